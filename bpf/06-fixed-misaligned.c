/* 06-fixed-misaligned.c — Verifier Diary entry 7, fixed.
 *
 * Without __attribute__((packed)) the compiler aligns `packets` to 8 bytes
 * (offset 8) and the atomic add is naturally aligned. Put the widest fields
 * first to avoid wasting the padding.
 */
#include <uapi/linux/bpf.h>

struct port_stats {
    u64 packets;                       /* FIX: naturally aligned, widest first */
    u8 flags;
};

BPF_ARRAY(stats, struct port_stats, 1);

int xdp_stats(struct xdp_md *ctx)
{
    u32 zero = 0;
    struct port_stats *s = stats.lookup(&zero);
    if (!s)
        return XDP_PASS;
    __sync_fetch_and_add(&s->packets, 1);
    return XDP_PASS;
}
