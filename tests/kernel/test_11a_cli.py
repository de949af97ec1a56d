"""``packetlab sketch run`` on a lab interface: the live top-k table, the adaptive switch under a spike of
new flows, Prometheus metrics scraped inside the namespace, detached on Ctrl-C; usage errors exit 2."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from packetlab.ebpf.loader import attached_xdp_prog_id
from packetlab.errors import EXIT_INTERRUPTED
from packetlab.show.prometheus import parse_samples
from packetlab.topo.servers import startup_scale
from packetlab.topo.traffic import flood


def test_run_prints_top_flows_switches_serves_metrics_and_detaches_on_ctrl_c(lab):
    """The command as a learner runs it: until Ctrl-C (no fixed duration, so a slow machine's compile and
    flood cannot outlast it), scraped once the flood is counted, then interrupted."""
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.0.0.1/24", peer_ip="10.0.0.2/24")
    h1.ping("10.0.0.2", count=1, timeout=2)
    argv = [sys.executable, "-m", "packetlab", "sketch", "run", "--netns", h2.namespace, "--dev", "eth0"]
    argv += ["--interval", "0.4", "--flows", "1024", "--high-rate", "3000", "--hold", "2"]
    argv += ["--metrics-port", "9118", "--top", "3"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30 * startup_scale()
        while attached_xdp_prog_id(h2.namespace, "eth0") is None and time.monotonic() < deadline:
            assert proc.poll() is None, f"sketch run exited early: {proc.communicate()[0]}"
            time.sleep(0.1)  # compiling: wait for the attach before sending
        time.sleep(0.5)
        flood(h1, h2, src_ip="10.0.0.1", dst_ip="10.0.0.2", seconds=0.8, flows=5000, dst_port=9)
        counted, samples = 0.0, {}
        deadline = time.monotonic() + 10 * startup_scale()
        while counted <= 1000 and time.monotonic() < deadline:  # an interval ends after the flood
            time.sleep(0.4)
            scrape = h2.run(["curl", "-s", "http://127.0.0.1:9118/metrics"])
            samples = parse_samples(scrape.stdout) if scrape.returncode == 0 else {}
            counted = samples.get(("packetlab_sketch_packets_total", frozenset({("counted", "packets")})), 0.0)
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30 * startup_scale())[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED, out
    assert counted > 1000, f"the metrics never counted the flood: {samples}"
    assert any(name == "packetlab_sketch_switches_total" for name, _ in samples)
    assert "-> switched to sketch" in out and "udp 10.0.0.1:" in out and "flows/s" in out
    assert attached_xdp_prog_id(h2.namespace, "eth0") is None, "the program is detached on Ctrl-C"


def test_usage_errors_exit_2():
    run = [sys.executable, "-m", "packetlab", "sketch", "run", "--dev", "eth0"]
    out = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--netns" in out.stderr
    out = subprocess.run([*run, "--netns", "x", "--mode", "fast"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice" in out.stderr
