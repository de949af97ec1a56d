/* toolkit_maps.c — per-CPU and lazily-read maps, for the toolkit's map tests. */
#include <uapi/linux/bpf.h>

struct pair { u64 packets; u64 bytes; };
BPF_PERCPU_ARRAY(per_cpu_pairs, struct pair, 1);
BPF_TABLE("lru_hash", u32, u64, never_read_from_python, 16);

int xdp_maps(struct xdp_md *ctx)
{
    u32 zero = 0;
    struct pair *p = per_cpu_pairs.lookup(&zero);
    if (p) {
        p->packets += 1;
        p->bytes += ctx->data_end - ctx->data;
    }
    u64 one = 1;
    never_read_from_python.update(&zero, &one);
    return XDP_PASS;
}
