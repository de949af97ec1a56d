/* 07-three-hooks.c — one flow, three hooks: XDP, tc (clsact) ingress, a socket filter.
 *
 * Three entry points in one file; each is loaded on its own (so each has its
 * own `seen` and `drop` maps):
 *
 *   xdp_hook     XDP on the receiving interface: the first to see a frame, on
 *                the raw buffer (struct xdp_md), before the sk_buff (on veth
 *                the skb already exists, but the stack has not run yet).
 *   tc_hook      tc clsact ingress, direct-action: runs on the sk_buff after
 *                XDP passed it and before netfilter/routing (struct __sk_buff,
 *                data starting at the Ethernet header); TC_ACT_SHOT drops.
 *   socket_hook  a socket filter (SO_ATTACH_BPF) on ONE UDP socket: it sees only
 *                what that socket would receive, after routing and UDP demux;
 *                its return value is how many bytes to keep, 0 drops the packet
 *                for this socket alone (tcpdump's filters are of this kind).
 *
 * seen[0] counts the lab's flow (IPv4 UDP to LAB_PORT), seen[1] everything
 * else; drop[0] = 1 makes this hook drop the lab's flow.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include "include/parse.h"

#define LAB_PORT 7007

BPF_ARRAY(seen, u64, 2);
BPF_ARRAY(drop, u32, 1);

static __always_inline int lab_flow(void *data, void *data_end)
{
    struct pl_cursor c = { .pos = data, .end = data_end };
    struct ethhdr *eth;
    struct iphdr *ip;
    struct udphdr *udp;
    if (parse_ethhdr(&c, &eth, NULL) != bpf_htons(ETH_P_IP))
        return 0;
    if (parse_iphdr(&c, &ip) != IPPROTO_UDP)
        return 0;
    if (parse_udphdr(&c, &udp) < 0)
        return 0;
    return udp->dest == bpf_htons(LAB_PORT);
}

/* count the packet; true if this hook must drop it */
static __always_inline int count_and_drop(int ours)
{
    u32 zero = 0;
    seen.increment(ours ? 0 : 1);
    u32 *d = drop.lookup(&zero);
    return ours && d && *d;
}

int xdp_hook(struct xdp_md *ctx)
{
    int ours = lab_flow((void *)(long)ctx->data, (void *)(long)ctx->data_end);
    return count_and_drop(ours) ? XDP_DROP : XDP_PASS;
}

int tc_hook(struct __sk_buff *skb)
{
    int ours = lab_flow((void *)(long)skb->data, (void *)(long)skb->data_end);
    return count_and_drop(ours) ? TC_ACT_SHOT : TC_ACT_OK;
}

int socket_hook(struct __sk_buff *skb)
{
    return count_and_drop(1) ? 0 : skb->len;   /* every packet here is for the socket: ours */
}
