/* 07-xdp-counter.c — count every frame by protocol and by source address.
 *
 * Parses Ethernet -> up to two VLAN tags -> IPv4 (with options) or IPv6 (with
 * extension headers) -> TCP / UDP / ICMP with the bounds-checked helpers in
 * include/parse.h, and counts packets and bytes:
 *
 *   proto_stats[category]   per-CPU array, one slot per CAT_* below
 *   src_stats[source]       LRU hash keyed by address family + source address
 *
 * It never changes a verdict: every frame, well-formed or not, gets XDP_PASS,
 * so the kernel's own stack still decides what to do with it. A frame whose
 * headers are cut short is counted as CAT_MALFORMED (and, if its IP header was
 * complete, under its source address too).
 *
 * The category numbers are mirrored in packetlab/course/m07_xdp/counters.py (CATEGORIES).
 */
#include "include/parse.h"

enum category {
    CAT_NON_IP = 0,      /* ARP, LLDP, ... anything that is not IPv4/IPv6 */
    CAT_IPV4_TCP,
    CAT_IPV4_UDP,
    CAT_IPV4_ICMP,
    CAT_IPV4_OTHER,
    CAT_IPV6_TCP,
    CAT_IPV6_UDP,
    CAT_IPV6_ICMP,
    CAT_IPV6_OTHER,
    CAT_FRAGMENT,        /* a non-first fragment: no L4 header to look at */
    CAT_MALFORMED,       /* a header is truncated or inconsistent */
    NUM_CATEGORIES,
};

struct counters {
    u64 packets;
    u64 bytes;
};

struct src_key {
    u8 family;           /* 4 or 6 */
    u8 pad[3];
    u8 addr[16];         /* IPv4 uses the first 4 bytes */
};

BPF_TABLE("lru_hash", struct src_key, struct counters, src_stats, 4096);

/* --8<-- [start:count-proto] */
BPF_PERCPU_ARRAY(proto_stats, struct counters, NUM_CATEGORIES);

static __always_inline void count_proto(u32 cat, u64 len)
{
    struct counters *c = proto_stats.lookup(&cat);
    if (c) {                     /* per-CPU slot: plain adds are safe */
        c->packets += 1;
        c->bytes += len;
    }
}
/* --8<-- [end:count-proto] */

static __always_inline void count_source(struct src_key *key, u64 len)
{
    struct counters *c = src_stats.lookup(key);
    if (c) {                     /* shared between CPUs: atomic adds */
        __sync_fetch_and_add(&c->packets, 1);
        __sync_fetch_and_add(&c->bytes, len);
        return;
    }
    struct counters init = {1, len};
    src_stats.update(key, &init);    /* a racing first packet may be lost: fine for a counter */
}

/* TCP, UDP, ICMP or other, for one address family: the four categories are
 * consecutive, starting at `tcp` (CAT_IPV4_TCP or CAT_IPV6_TCP). */
static __always_inline u32 l4_category(int proto, int icmp_proto, u32 tcp, struct pl_cursor *c)
{
    if (proto == IPPROTO_TCP) {
        struct tcphdr *th;
        return parse_tcphdr(c, &th) < 0 ? CAT_MALFORMED : tcp;
    }
    if (proto == IPPROTO_UDP) {
        struct udphdr *uh;
        return parse_udphdr(c, &uh) < 0 ? CAT_MALFORMED : tcp + 1;
    }
    if (proto == icmp_proto) {   /* ICMP and ICMPv6 both start with type, code, checksum */
        struct icmphdr *ih;
        return parse_icmphdr(c, &ih) < 0 ? CAT_MALFORMED : tcp + 2;
    }
    return tcp + 3;
}

int xdp_counter(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    u64 len = data_end - data;
    struct pl_cursor c = { .pos = data, .end = data_end };
    struct ethhdr *eth;
    struct src_key key = {};
    u32 cat;

    int eth_proto = parse_ethhdr(&c, &eth, NULL);
    if (eth_proto < 0) {
        cat = CAT_MALFORMED;
    } else if (eth_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip;
        int proto = parse_iphdr(&c, &ip);
        if (proto < 0) {
            cat = CAT_MALFORMED;
        } else {
            key.family = 4;
            __builtin_memcpy(key.addr, &ip->saddr, 4);
            count_source(&key, len);
            if (pl_ipv4_is_later_fragment(ip))
                cat = CAT_FRAGMENT;
            else
                cat = l4_category(proto, IPPROTO_ICMP, CAT_IPV4_TCP, &c);
        }
    } else if (eth_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6;
        __u16 frag_off = 0;
        int proto = parse_ip6hdr(&c, &ip6, &frag_off);
        if (proto < 0) {
            cat = CAT_MALFORMED;
        } else {
            key.family = 6;
            __builtin_memcpy(key.addr, &ip6->saddr, 16);
            count_source(&key, len);
            if (frag_off)
                cat = CAT_FRAGMENT;
            else
                cat = l4_category(proto, IPPROTO_ICMPV6, CAT_IPV6_TCP, &c);
        }
    } else {
        cat = CAT_NON_IP;
    }
    count_proto(cat, len);
    return XDP_PASS;
}
