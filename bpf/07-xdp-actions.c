/* 07-xdp-actions.c — return whichever XDP action user space asks for, and count them.
 *
 * The lab sets `action[0]` between XDP_ABORTED (0), XDP_DROP (1), XDP_PASS (2)
 * and XDP_TX (3) while pinging through the interface, to watch what each
 * verdict does to real traffic:
 *
 *   XDP_PASS     the frame continues into the kernel's stack (ping works)
 *   XDP_DROP     the frame is freed here, silently (ping fails)
 *   XDP_ABORTED  also freed, but marks a program error: the xdp:xdp_exception
 *                tracepoint fires (ping fails)
 *   XDP_TX       the frame goes back out of the interface it came in on,
 *                unchanged (the sender sees its own request come back)
 *
 * XDP_REDIRECT needs a target and has its own program (07-xdp-redirect.c). Any
 * other value, or no entry at all (the state after loading), means XDP_PASS.
 * verdicts[v] counts how often v was returned.
 */
#include <uapi/linux/bpf.h>

BPF_HASH(action, u32, u32, 1);   /* a hash, so "no entry" can mean XDP_PASS */
BPF_PERCPU_ARRAY(verdicts, u64, 5);

int xdp_actions(struct xdp_md *ctx)
{
    u32 zero = 0;
    u32 verdict = XDP_PASS;
    u32 *want = action.lookup(&zero);
    if (want && *want <= XDP_TX)
        verdict = *want;
    u64 *n = verdicts.lookup(&verdict);
    if (n)
        *n += 1;
    return verdict;
}
