/* 08-xdp-rule-match.c — the firewall's question in its simplest form: first matching rule wins.
 *
 * A small, fixed rule shape: up to MAX_RULES rules in an array, each "protocol + destination
 * port range -> allow or drop", checked in order; the first rule that matches decides, and
 * when none does the default policy (rm_default[0]) does. This is the linear scan every
 * iptables chain does, and the reference the module 08 firewall (bpf/08-xdp-firewall.c) is
 * tested against: its bit vectors give the same answer without a scan.
 *
 *   rm_rules[i]     struct rm_rule; a rule with proto 0 ends the list
 *   rm_default[0]   RM_ALLOW or RM_DROP
 *   rm_hits[i]      per-CPU packets decided by rule i (MAX_RULES: by the default)
 */
#include "include/parse.h"

#define MAX_RULES 8
#define RM_ALLOW 0
#define RM_DROP 1

struct rm_rule {
    u8 proto;                    /* IPPROTO_TCP or IPPROTO_UDP; 0: no more rules */
    u8 action;                   /* RM_ALLOW or RM_DROP */
    u16 dport_lo;                /* host byte order, inclusive */
    u16 dport_hi;
    u16 pad;
};

BPF_ARRAY(rm_rules, struct rm_rule, MAX_RULES);
BPF_ARRAY(rm_default, u32, 1);
BPF_PERCPU_ARRAY(rm_hits, u64, MAX_RULES + 1);

/* --8<-- [start:match] */
/* The index of the first rule matching (proto, dport), or MAX_RULES if none does. */
static __always_inline u32 match_rules(u8 proto, u16 dport)
{
#pragma unroll
    for (u32 i = 0; i < MAX_RULES; i++) {
        u32 key = i;
        struct rm_rule *r = rm_rules.lookup(&key);
        if (!r || r->proto == 0)
            break;               /* end of the list */
        if (r->proto == proto && dport >= r->dport_lo && dport <= r->dport_hi)
            return i;
    }
    return MAX_RULES;
}
/* --8<-- [end:match] */

int xdp_rule_match(struct xdp_md *ctx)
{
    struct pl_cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
    struct ethhdr *eth;
    struct iphdr *ip;
    if (parse_ethhdr(&c, &eth, NULL) != bpf_htons(ETH_P_IP))
        return XDP_PASS;             /* this small firewall filters IPv4 only */
    int proto = parse_iphdr(&c, &ip);
    if (proto < 0)
        return XDP_DROP;             /* a cut IPv4 header: never let it bypass the rules */
    u16 dport = 0;
    if (proto == IPPROTO_TCP) {
        struct tcphdr *tcp;
        if (parse_tcphdr(&c, &tcp) < 0)
            return XDP_DROP;
        dport = bpf_ntohs(tcp->dest);
    } else if (proto == IPPROTO_UDP) {
        struct udphdr *udp;
        if (parse_udphdr(&c, &udp) < 0)
            return XDP_DROP;
        dport = bpf_ntohs(udp->dest);
    }
    u32 hit = match_rules(proto, dport);
    u64 *n = rm_hits.lookup(&hit);
    if (n)
        *n += 1;
    u32 action = RM_ALLOW;
    if (hit < MAX_RULES) {
        struct rm_rule *r = rm_rules.lookup(&hit);
        action = r ? r->action : RM_DROP;
    } else {
        u32 zero = 0;
        u32 *def = rm_default.lookup(&zero);
        action = def ? *def : RM_ALLOW;
    }
    return action == RM_DROP ? XDP_DROP : XDP_PASS;
}
