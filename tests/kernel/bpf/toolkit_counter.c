/* toolkit_counter.c — counts frames by EtherType class; drops UDP to port 9.
 * Used by the toolkit tests to check attach, maps and BPF_PROG_TEST_RUN. */
#include "include/parse.h"

BPF_ARRAY(by_class, u64, 4);   /* 0 other, 1 ARP, 2 IPv4, 3 IPv6 */

int xdp_toolkit(struct xdp_md *ctx)
{
    struct pl_cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
    struct ethhdr *eth;
    struct iphdr *ip;
    struct udphdr *udp;
    int proto = parse_ethhdr(&c, &eth, NULL);
    u32 key = proto == bpf_htons(ETH_P_ARP) ? 1 : proto == bpf_htons(ETH_P_IP) ? 2 :
              proto == bpf_htons(ETH_P_IPV6) ? 3 : 0;
    by_class.increment(key);
    if (key == 2 && parse_iphdr(&c, &ip) == IPPROTO_UDP && parse_udphdr(&c, &udp) == 0
        && udp->dest == bpf_htons(9))
        return XDP_DROP;
    return XDP_PASS;
}
