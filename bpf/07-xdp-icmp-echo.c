/* 07-xdp-icmp-echo.c — answer ping in XDP: rewrite the request into a reply, XDP_TX it.
 *
 * An ICMP echo request (IPv4 type 8, IPv6 type 128) addressed to this
 * interface's MAC is turned into the echo reply in place:
 *
 *   Ethernet   swap source and destination MAC
 *   IPv4       swap source and destination address, TTL := 64
 *              (header checksum updated incrementally for the TTL change;
 *               swapping two addresses does not change a ones'-complement sum)
 *   IPv6       swap source and destination address, hop limit := 64
 *   ICMP       type 8 -> 0 (ICMPv6 128 -> 129), checksum updated incrementally
 *              (RFC 1624: HC' = ~(~HC + ~m + m')); id, sequence, payload unchanged
 *
 * and sent back out of the interface it came in on with XDP_TX. The kernel's
 * ICMP code never sees the request, so its Icmp InEchos / OutEchoReps counters
 * do not move. Everything the responder does not fully understand goes to the
 * kernel with XDP_PASS: IPv4 with options, fragments, IPv6 with extension
 * headers, multicast/broadcast, truncated headers, and anything not an echo
 * request. VLAN tags are kept, so a tagged request gets a tagged reply.
 *
 * The checksum helpers come from include/csum.h. Eqn. 3 is exact for the IPv4
 * header and ICMPv6 (whose pseudo-header is never all zero); an ICMPv4 reply of
 * all zero bytes (id 0, sequence 0, zero payload) needs 0xffff instead of the
 * 0x0000 eqn. 3 gives, and only then: pl_icmp_csum_zero_message() fixes it.
 *
 * replies[0] counts IPv4 replies sent, replies[1] IPv6.
 */
#include "include/parse.h"
#include "include/csum.h"

#define REPLY_TTL 64

BPF_PERCPU_ARRAY(replies, u64, 2);

static __always_inline void swap_mac(struct ethhdr *eth)
{
    __u8 tmp[ETH_ALEN];
    __builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

static __always_inline void count_reply(u32 family_slot)
{
    u64 *n = replies.lookup(&family_slot);
    if (n)
        *n += 1;
}

static __always_inline int echo_v4(struct pl_cursor *c, struct ethhdr *eth)
{
    struct iphdr *ip;
    struct icmphdr *icmp;
    if (parse_iphdr(c, &ip) != IPPROTO_ICMP)
        return XDP_PASS;
    if (ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))   /* options, or any fragment */
        return XDP_PASS;
    __u32 daddr = bpf_ntohl(ip->daddr);
    if ((daddr >> 28) == 0xe || daddr == 0xffffffff)           /* multicast / broadcast */
        return XDP_PASS;
    if (parse_icmphdr(c, &icmp) != ICMP_ECHO || icmp->code != 0)
        return XDP_PASS;

    swap_mac(eth);
    __be32 tmp = ip->saddr;
    ip->saddr = ip->daddr;
    ip->daddr = tmp;
    /* TTL shares a 16-bit word with the protocol field */
    __be16 old_word = *(__be16 *)&ip->ttl;
    ip->ttl = REPLY_TTL;
    pl_csum_replace2(&ip->check, old_word, *(__be16 *)&ip->ttl);
    /* type and code form the first 16-bit word of the ICMP header */
    old_word = *(__be16 *)icmp;
    icmp->type = ICMP_ECHOREPLY;
    pl_csum_replace2(&icmp->checksum, old_word, *(__be16 *)icmp);
    pl_icmp_csum_zero_message(&icmp->checksum, icmp, bpf_ntohs(ip->tot_len) - sizeof(*ip), c->end);
    count_reply(0);
    return XDP_TX;
}

static __always_inline int echo_v6(struct pl_cursor *c, struct ethhdr *eth)
{
    struct ipv6hdr *ip6;
    struct icmp6hdr *icmp6;
    if (c->pos + sizeof(*ip6) > c->end)
        return XDP_PASS;
    ip6 = c->pos;
    if (ip6->nexthdr != IPPROTO_ICMPV6)                        /* extension headers: kernel */
        return XDP_PASS;
    if (parse_ip6hdr(c, &ip6, NULL) != IPPROTO_ICMPV6)
        return XDP_PASS;
    if (ip6->daddr.in6_u.u6_addr8[0] == 0xff)                  /* multicast */
        return XDP_PASS;
    if (parse_icmp6hdr(c, &icmp6) != ICMPV6_ECHO_REQUEST || icmp6->icmp6_code != 0)
        return XDP_PASS;

    swap_mac(eth);
    struct in6_addr tmp = ip6->saddr;
    ip6->saddr = ip6->daddr;
    ip6->daddr = tmp;
    ip6->hop_limit = REPLY_TTL;        /* not covered by any checksum */
    __be16 old_word = *(__be16 *)icmp6;
    icmp6->icmp6_type = ICMPV6_ECHO_REPLY;
    pl_csum_replace2(&icmp6->icmp6_cksum, old_word, *(__be16 *)icmp6);
    count_reply(1);
    return XDP_TX;
}

int xdp_icmp_echo(struct xdp_md *ctx)
{
    struct pl_cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
    struct ethhdr *eth;
    int proto = parse_ethhdr(&c, &eth, NULL);
    if (proto < 0 || (eth->h_dest[0] & 1))                    /* truncated, or not unicast to us */
        return XDP_PASS;
    if (proto == bpf_htons(ETH_P_IP))
        return echo_v4(&c, eth);
    if (proto == bpf_htons(ETH_P_IPV6))
        return echo_v6(&c, eth);
    return XDP_PASS;
}
