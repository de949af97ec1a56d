/* 06-fixed-unbounded-loop.c — Verifier Diary entry 2, fixed.
 *
 * The configured count is clamped to a compile-time constant before the loop,
 * so the verifier can prove the loop ends after at most MAX_ROUNDS iterations.
 *
 * The pragma matters too: without it clang unrolls the loop by 8 and exits it
 * with an `!=` test on a computed trip count, a shape the verifier cannot
 * bound ("BPF program is too large. Processed 1000001 insn"). The verifier
 * checks the bytecode clang emits, not the C you wrote.
 * (For large counts, bpf_loop() moves the iteration into a kernel helper.)
 */
#include <uapi/linux/bpf.h>

#define MAX_ROUNDS 64

BPF_ARRAY(rounds, u32, 1);     /* configured from user space */
BPF_ARRAY(last_hash, u64, 1);

int xdp_mix(struct xdp_md *ctx)
{
    u32 zero = 0;
    u32 *n = rounds.lookup(&zero);
    if (!n)
        return XDP_PASS;
    u32 limit = *n;
    if (limit > MAX_ROUNDS)            /* FIX: a bound the verifier can see */
        limit = MAX_ROUNDS;
    u64 h = ctx->ingress_ifindex;
#pragma clang loop unroll(disable)
    for (u32 i = 0; i < limit; i++)
        h = h * 31 + i;
    u64 *out = last_hash.lookup(&zero);
    if (out)
        *out = h;
    return XDP_PASS;
}
