/* 00-xdp-pass.c — the smallest useful XDP program: count frames, pass them on.
 *
 * `packetlab doctor` loads it to prove that bcc, the kernel headers and native
 * XDP on veth all work; module 00 attaches it to see a program in `ip link`.
 */
#include <uapi/linux/bpf.h>

BPF_ARRAY(frames, u64, 1);

int xdp_pass(struct xdp_md *ctx)
{
    u32 key = 0;
    u64 *count = frames.lookup(&key);
    if (count)
        __sync_fetch_and_add(count, 1);
    return XDP_PASS;
}
