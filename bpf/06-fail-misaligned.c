/* 06-fail-misaligned.c — Verifier Diary entry 7: REJECTED on purpose.
 *
 * Why it fails: the map value is a packed struct, so the 8-byte counter sits
 * at offset 1. Ordinary loads may be misaligned on x86 (the verifier checks
 * them only with BPF_F_STRICT_ALIGNMENT), but atomic operations must always
 * be naturally aligned: an 8-byte atomic add at offset 1 is refused with
 * "misaligned value access".
 * The fix is 06-fixed-misaligned.c.
 */
#include <uapi/linux/bpf.h>

struct port_stats {
    u8 flags;
    u64 packets;
} __attribute__((packed));

BPF_ARRAY(stats, struct port_stats, 1);

int xdp_stats(struct xdp_md *ctx)
{
    u32 zero = 0;
    struct port_stats *s = stats.lookup(&zero);
    if (!s)
        return XDP_PASS;
    __sync_fetch_and_add(&s->packets, 1);   /* REJECTED HERE: 8-byte atomic at offset 1 */
    return XDP_PASS;
}
