/* 07-xdp-arp-reply.c — answer ARP requests for one IPv4 address in XDP.
 *
 * A request "who has <arp_config.ip>?" is turned into the reply *in place*
 * (RFC 826: opcode 2, the sender becomes the target, we become the sender, and
 * the Ethernet header goes back where it came from) and sent back out of the
 * interface it arrived on with XDP_TX. Everything else is passed to the stack.
 * ARP carries no checksum, so nothing needs updating after the rewrite.
 *
 *   arp_config[0]   the address to answer for and the MAC to answer with (user space writes it)
 *   arp_replies[0]  per-CPU count of replies sent
 */
#include "include/parse.h"
#include <uapi/linux/if_arp.h>

struct arp_eth_ipv4 {            /* the ARP body for Ethernet + IPv4, after struct arphdr */
    u8 sha[ETH_ALEN];            /* sender MAC */
    u8 spa[4];                   /* sender IPv4 */
    u8 tha[ETH_ALEN];            /* target MAC */
    u8 tpa[4];                   /* target IPv4 */
};

struct arp_config {
    u8 mac[ETH_ALEN];
    u8 pad[2];
    u8 ip[4];                    /* network order, as on the wire */
};

BPF_ARRAY(arp_config, struct arp_config, 1);
BPF_PERCPU_ARRAY(arp_replies, u64, 1);

/* --8<-- [start:arp-reply] */
static __always_inline int arp_reply(struct ethhdr *eth, struct arphdr *arp, struct arp_eth_ipv4 *body,
                                     struct arp_config *cfg)
{
    arp->ar_op = bpf_htons(ARPOP_REPLY);
    __builtin_memcpy(body->tha, body->sha, ETH_ALEN);   /* the asker becomes the target */
    __builtin_memcpy(body->tpa, body->spa, 4);
    __builtin_memcpy(body->sha, cfg->mac, ETH_ALEN);    /* we are the sender */
    __builtin_memcpy(body->spa, cfg->ip, 4);
    __builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, cfg->mac, ETH_ALEN);
    u32 zero = 0;
    u64 *n = arp_replies.lookup(&zero);
    if (n)
        *n += 1;
    return XDP_TX;
}
/* --8<-- [end:arp-reply] */

int xdp_arp_reply(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct pl_cursor c = { .pos = data, .end = data_end };
    struct ethhdr *eth;

    if (parse_ethhdr(&c, &eth, NULL) != bpf_htons(ETH_P_ARP))
        return XDP_PASS;
    struct arphdr *arp = c.pos;
    struct arp_eth_ipv4 *body = (void *)(arp + 1);
    if ((void *)(body + 1) > c.end)
        return XDP_PASS;             /* too short for Ethernet/IPv4 ARP: the stack decides */
    if (arp->ar_hrd != bpf_htons(ARPHRD_ETHER) || arp->ar_pro != bpf_htons(ETH_P_IP) ||
        arp->ar_hln != ETH_ALEN || arp->ar_pln != 4 || arp->ar_op != bpf_htons(ARPOP_REQUEST))
        return XDP_PASS;
    u32 zero = 0;
    struct arp_config *cfg = arp_config.lookup(&zero);
    u32 target, ours;
    if (!cfg)
        return XDP_PASS;             /* not configured */
    __builtin_memcpy(&target, body->tpa, 4);
    __builtin_memcpy(&ours, cfg->ip, 4);
    if (target != ours)
        return XDP_PASS;             /* not our address */
    return arp_reply(eth, arp, body, cfg);
}
