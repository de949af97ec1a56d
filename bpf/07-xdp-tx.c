/* 07-xdp-tx.c — send every frame straight back out (XDP_TX), unchanged.
 *
 * Module 07's benchmark uses it as a traffic generator: run through
 * BPF_PROG_TEST_RUN in "live frames" mode with a lab veth as the ingress
 * device, each XDP_TX puts one frame on that veth *as an xdp_frame*, so the
 * peer receives it the way a NIC driver would: without an sk_buff. That is the
 * case where XDP_DROP's advantage over netfilter shows on veth.
 */
#include <uapi/linux/bpf.h>

int xdp_tx(struct xdp_md *ctx)
{
    return XDP_TX;
}
