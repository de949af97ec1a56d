/* 06-fixed-unbounded-loop.c — Verifier Diary entry 2, fixed.
 *
 * The loop now runs to a compile-time constant, MAX_ROUNDS, and the rounds past
 * the configured count are skipped, so every path ends after at most MAX_ROUNDS
 * iterations and the verifier can count them.
 *
 * Why not just clamp the count (`if (n > MAX_ROUNDS) n = MAX_ROUNDS;`) and keep
 * `i < n`? clang rewrites that exit test into `i != n`, and a verifier that
 * does not narrow a range on `!=` (Linux 6.1 does not; 6.18 does) walks past
 * MAX_ROUNDS forever: "The sequence of 8193 jumps is too complex". The pragma
 * matters too: without it clang unrolls the loop, and the verifier checks the
 * bytecode clang emits, not the C you wrote.
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
    u64 h = ctx->ingress_ifindex;
#pragma clang loop unroll(disable)
    for (u32 i = 0; i < MAX_ROUNDS; i++)       /* FIX: a bound the verifier can count to */
        if (i < limit)
            h = h * 31 + i;
    u64 *out = last_hash.lookup(&zero);
    if (out)
        *out = h;
    return XDP_PASS;
}
