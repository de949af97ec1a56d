"""Loading and driving eBPF: bcc and CO-RE loaders, the bpf(2) layer, maps, test runs, tracepoints."""
