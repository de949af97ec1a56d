/* 06-fail-unbounded-loop.c — Verifier Diary entry 2: REJECTED on purpose.
 *
 * Why it fails: the number of mixing rounds comes from a map that user space
 * writes, so to the verifier it is any 32-bit number. The verifier proves a
 * loop safe by walking it iteration by iteration; with no upper bound it walks
 * until it hits its own limits (on 6.x: "The sequence of 8193 jumps is too
 * complex", older kernels: "back-edge" or "BPF program is too large").
 * The fix is 06-fixed-unbounded-loop.c.
 */
#include <uapi/linux/bpf.h>

BPF_ARRAY(rounds, u32, 1);     /* configured from user space */
BPF_ARRAY(last_hash, u64, 1);

int xdp_mix(struct xdp_md *ctx)
{
    u32 zero = 0;
    u32 *n = rounds.lookup(&zero);
    if (!n)
        return XDP_PASS;
    u64 h = ctx->ingress_ifindex;
    for (u32 i = 0; i < *n; i++)       /* REJECTED HERE: *n can be 4 billion */
        h = h * 31 + i;
    u64 *out = last_hash.lookup(&zero);
    if (out)
        *out = h;
    return XDP_PASS;
}
