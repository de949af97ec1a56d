/* parse.h — bounds-checked packet parsing shared by every program in bpf/.
 *
 * Contract (as in xdp-tutorial): each parse_* function takes a cursor whose
 * `pos` points at the header to parse and `end` at data_end. On success it
 * returns the next protocol number (>= 0), stores a pointer to the header and
 * advances `pos` past it. On a truncated or malformed header it returns -1 and
 * leaves `pos` unchanged; the caller decides the verdict (usually XDP_PASS, so
 * the kernel's own stack handles or rejects the odd packet).
 *
 * Every pointer is compared with `end` before it is dereferenced — that is
 * the only way the verifier accepts a read of packet memory.
 *
 * Include with:  #include "include/parse.h"   (bpf/ is on the include path).
 */
#ifndef PACKETLAB_PARSE_H
#define PACKETLAB_PARSE_H

#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/in.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/icmp.h>
#include <uapi/linux/icmpv6.h>

#define PL_MAX_VLAN 2          /* 802.1Q / 802.1ad tags we look through */
#define PL_MAX_IPV6_EXT 4      /* IPv6 extension headers we skip (bounded loop) */

struct pl_cursor {
    void *pos;
    void *end;
};

struct pl_vlan_hdr {
    __be16 tci;
    __be16 encap_proto;
};

static __always_inline int pl_is_vlan(__u16 h_proto)
{
    return h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD);
}

/* Ethernet, then up to PL_MAX_VLAN tags. Returns the inner EtherType (network order). */
static __always_inline int parse_ethhdr(struct pl_cursor *c, struct ethhdr **eth_out, __u16 *vlan_id)
{
    struct ethhdr *eth = c->pos;
    if ((void *)(eth + 1) > c->end)
        return -1;
    void *pos = eth + 1;
    __u16 proto = eth->h_proto;
    if (vlan_id)
        *vlan_id = 0;
#pragma unroll
    for (int i = 0; i < PL_MAX_VLAN; i++) {
        if (!pl_is_vlan(proto))
            break;
        struct pl_vlan_hdr *vh = pos;
        if ((void *)(vh + 1) > c->end)
            return -1;
        if (vlan_id && i == 0)
            *vlan_id = bpf_ntohs(vh->tci) & 0x0fff;
        proto = vh->encap_proto;
        pos = vh + 1;
    }
    if (pl_is_vlan(proto))
        return -1;                 /* more tags than we look through */
    c->pos = pos;
    *eth_out = eth;
    return proto;
}

/* IPv4 with options (ihl > 5). Returns the L4 protocol number. */
static __always_inline int parse_iphdr(struct pl_cursor *c, struct iphdr **ip_out)
{
    struct iphdr *ip = c->pos;
    if ((void *)(ip + 1) > c->end)
        return -1;
    int hdrsize = ip->ihl * 4;
    if (ip->version != 4 || hdrsize < (int)sizeof(*ip))
        return -1;
    if (c->pos + hdrsize > c->end)
        return -1;
    c->pos += hdrsize;
    *ip_out = ip;
    return ip->protocol;
}

/* True for a fragment other than the first (no L4 header in it). */
static __always_inline int pl_ipv4_is_later_fragment(struct iphdr *ip)
{
    return (ip->frag_off & bpf_htons(0x1fff)) != 0;
}

/* IPv6 plus up to PL_MAX_IPV6_EXT extension headers (hop-by-hop, routing,
 * destination options, fragment). Returns the upper-layer protocol; *frag_off
 * is set to the fragment offset if a fragment header was seen (0 otherwise). */
static __always_inline int parse_ip6hdr(struct pl_cursor *c, struct ipv6hdr **ip6_out, __u16 *frag_off)
{
    struct ipv6hdr *ip6 = c->pos;
    if ((void *)(ip6 + 1) > c->end)
        return -1;
    if (ip6->version != 6)
        return -1;
    void *pos = ip6 + 1;
    __u8 next = ip6->nexthdr;
    if (frag_off)
        *frag_off = 0;
#pragma unroll
    for (int i = 0; i < PL_MAX_IPV6_EXT; i++) {
        if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS) {
            __u8 *ext = pos;
            if ((void *)(ext + 2) > c->end)
                return -1;
            next = ext[0];
            pos += (ext[1] + 1) * 8;
        } else if (next == IPPROTO_FRAGMENT) {
            __u8 *ext = pos;
            if ((void *)(ext + 8) > c->end)
                return -1;
            next = ext[0];
            if (frag_off)
                *frag_off = bpf_ntohs(*(__be16 *)(ext + 2)) >> 3;
            pos += 8;
        } else {
            break;
        }
    }
    if (pos > c->end)
        return -1;
    c->pos = pos;
    *ip6_out = ip6;
    return next;
}

static __always_inline int parse_udphdr(struct pl_cursor *c, struct udphdr **udp_out)
{
    struct udphdr *udp = c->pos;
    if ((void *)(udp + 1) > c->end)
        return -1;
    c->pos = udp + 1;
    *udp_out = udp;
    return 0;
}

/* TCP including options (doff > 5). */
static __always_inline int parse_tcphdr(struct pl_cursor *c, struct tcphdr **tcp_out)
{
    struct tcphdr *tcp = c->pos;
    if ((void *)(tcp + 1) > c->end)
        return -1;
    int len = tcp->doff * 4;
    if (len < (int)sizeof(*tcp))
        return -1;
    if (c->pos + len > c->end)
        return -1;
    c->pos += len;
    *tcp_out = tcp;
    return 0;
}

static __always_inline int parse_icmphdr(struct pl_cursor *c, struct icmphdr **icmp_out)
{
    struct icmphdr *icmp = c->pos;
    if ((void *)(icmp + 1) > c->end)
        return -1;
    c->pos = icmp + 1;
    *icmp_out = icmp;
    return icmp->type;
}

static __always_inline int parse_icmp6hdr(struct pl_cursor *c, struct icmp6hdr **icmp6_out)
{
    struct icmp6hdr *icmp6 = c->pos;
    if ((void *)(icmp6 + 1) > c->end)
        return -1;
    c->pos = icmp6 + 1;
    *icmp6_out = icmp6;
    return icmp6->icmp6_type;
}

#endif /* PACKETLAB_PARSE_H */
