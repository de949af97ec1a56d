/* 01-xdp-proto-counter.c — count every frame on an interface by protocol, then pass it on.
 *
 * Module 01's first XDP program. It runs in the driver's receive path, before
 * the network stack (on a physical NIC, before an skb is even allocated), and
 * sees each frame as raw bytes between ctx->data and ctx->data_end. It walks the same headers the lab dissects by
 * hand — Ethernet (through VLAN tags), then ARP, IPv4 or IPv6, then the
 * transport header — using the bounds-checked parsers in include/parse.h, and
 * adds the frame to one counter. Every frame lands in exactly one counter, so
 * the counters always add up to the frames received.
 *
 * The map is a per-CPU array indexed by `enum proto`: each CPU increments its
 * own copy without atomics, and user space sums the copies when it reads.
 * The Python side takes the counter names from this enum
 * (packetlab.show.widgets.enum_labels), so the two cannot drift apart.
 */
#include "include/parse.h"

enum proto {
    PROTO_ARP,
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    PROTO_ICMPV6,
    PROTO_IPV4_OTHER,   /* IPv4 carrying anything else (IGMP, GRE, ...) */
    PROTO_IPV6_OTHER,   /* IPv6 carrying anything else */
    PROTO_OTHER,        /* any other EtherType (LLDP, MPLS, ...) */
    PROTO_MALFORMED,    /* shorter than the headers it announces: the kernel will drop it */
    PROTO_MAX,
};

struct proto_stats {
    __u64 packets;
    __u64 bytes;
};

BPF_PERCPU_ARRAY(stats, struct proto_stats, PROTO_MAX);

#define ARP_ETH_IPV4_LEN 28    /* struct arphdr (8) + two MAC and two IPv4 addresses */

/* Which counter does this frame belong to? Reads only bytes proven to exist. */
static __always_inline __u32 classify(struct pl_cursor *c)
{
    struct ethhdr *eth;
    int eth_type = parse_ethhdr(c, &eth, NULL);
    if (eth_type < 0)
        return PROTO_MALFORMED;

    if (eth_type == bpf_htons(ETH_P_ARP)) {
        if (c->pos + ARP_ETH_IPV4_LEN > c->end)
            return PROTO_MALFORMED;
        return PROTO_ARP;
    }

    if (eth_type == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip;
        int l4 = parse_iphdr(c, &ip);
        if (l4 < 0)
            return PROTO_MALFORMED;
        int later_fragment = pl_ipv4_is_later_fragment(ip);   /* no L4 header inside */
        if (l4 == IPPROTO_ICMP) {
            struct icmphdr *icmp;
            if (!later_fragment && parse_icmphdr(c, &icmp) < 0)
                return PROTO_MALFORMED;
            return PROTO_ICMP;
        }
        if (l4 == IPPROTO_TCP) {
            struct tcphdr *tcp;
            if (!later_fragment && parse_tcphdr(c, &tcp) < 0)
                return PROTO_MALFORMED;
            return PROTO_TCP;
        }
        if (l4 == IPPROTO_UDP) {
            struct udphdr *udp;
            if (!later_fragment && parse_udphdr(c, &udp) < 0)
                return PROTO_MALFORMED;
            return PROTO_UDP;
        }
        return PROTO_IPV4_OTHER;
    }

    /* --8<-- [start:ipv6] */
    if (eth_type == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6;
        __u16 frag_off = 0;
        int l4 = parse_ip6hdr(c, &ip6, &frag_off);
        if (l4 < 0)
            return PROTO_MALFORMED;
        if (l4 == IPPROTO_ICMPV6) {
            struct icmp6hdr *icmp6;
            if (!frag_off && parse_icmp6hdr(c, &icmp6) < 0)
                return PROTO_MALFORMED;
            return PROTO_ICMPV6;
        }
        if (l4 == IPPROTO_TCP) {
            struct tcphdr *tcp;
            if (!frag_off && parse_tcphdr(c, &tcp) < 0)
                return PROTO_MALFORMED;
            return PROTO_TCP;
        }
        if (l4 == IPPROTO_UDP) {
            struct udphdr *udp;
            if (!frag_off && parse_udphdr(c, &udp) < 0)
                return PROTO_MALFORMED;
            return PROTO_UDP;
        }
        return PROTO_IPV6_OTHER;
    }
    /* --8<-- [end:ipv6] */

    return PROTO_OTHER;
}

int xdp_proto_counter(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct pl_cursor c = { .pos = data, .end = data_end };

    __u32 key = classify(&c);
    /* --8<-- [start:count] */
    struct proto_stats *s = stats.lookup(&key);
    if (s) {                        /* the verifier insists: a lookup may return NULL */
        s->packets += 1;            /* per-CPU value: no other CPU writes it, no atomics needed */
        s->bytes += data_end - data;
    }
    /* --8<-- [end:count] */
    return XDP_PASS;                /* count, never interfere */
}
