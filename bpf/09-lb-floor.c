/* 09-lb-floor.c — the floor of the load balancer benchmark: drop every packet.
 *
 * BPF_PROG_TEST_RUN's ns/packet for this program is the fixed cost of running
 * any XDP program at all (context setup, the call, the return); the load
 * balancer's ns/packet is reported as a multiple of it, measured in the same run.
 */
#include <uapi/linux/bpf.h>

int lb_floor(struct xdp_md *ctx)
{
    return XDP_DROP;
}
