/* 07-xdp-redirect.c — an XDP "wire": frames arriving on one interface leave by another.
 *
 * No bridge, no routing, no IP address on the box: the program looks up the
 * ingress interface in a devmap and returns XDP_REDIRECT, and the kernel
 * transmits the frame, unchanged, out of the interface stored there. Frames
 * from an interface with no devmap entry fall back to XDP_PASS (the low bits of
 * redirect_map's flags are the verdict to use when the key is missing).
 *
 *   tx_port[ingress ifindex] = egress ifindex     (filled from user space)
 *   redirected[ingress ifindex] += 1              (only when the redirect was taken)
 *
 * On veth the redirected frame is handed to the *peer* of the egress
 * interface through its XDP ring, which exists only while that peer has NAPI
 * enabled: an XDP program attached to it, or GRO switched on. Without it the
 * frame is dropped (counted in the egress interface's tx_dropped).
 */
#include <uapi/linux/bpf.h>

#define MAX_IFINDEX 64

BPF_DEVMAP(tx_port, MAX_IFINDEX);
BPF_PERCPU_ARRAY(redirected, u64, MAX_IFINDEX);

int xdp_redirect_wire(struct xdp_md *ctx)
{
    u32 in = ctx->ingress_ifindex;
    if (in >= MAX_IFINDEX)
        return XDP_PASS;
    int verdict = tx_port.redirect_map(in, XDP_PASS);
    if (verdict == XDP_REDIRECT) {
        u64 *n = redirected.lookup(&in);
        if (n)
            *n += 1;              /* per-CPU slot: no atomic needed */
    }
    return verdict;
}
