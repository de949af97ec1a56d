/* 09-lb-decap.c — the backend's half of DSR: strip the load balancer's IPIP header.
 *
 * The load balancer (09-lb.c, mode dsr) wraps a client's packet in an outer
 * IPv4 header (protocol 4, IPIP) addressed to this backend. The kernel used in
 * CI has no ipip device, so this XDP program on the backend's interface does
 * the decapsulation itself: it checks the outer header, moves the Ethernet
 * header 20 bytes forward and drops the outer IP header with
 * bpf_xdp_adjust_head(). The inner packet — still addressed to the VIP, which
 * the backend holds on `lo` — goes up the stack (XDP_PASS) and the reply
 * leaves straight for the client, never through the load balancer.
 *
 * Verdicts: IPIP whose outer destination is one of `local_addrs` (filled by the
 * control plane; empty map = accept any) and whose inner header is IPv4 ->
 * decapsulated, XDP_PASS; IPIP to another address or with a truncated or
 * non-IPv4 inner packet -> XDP_DROP (counted); everything else -> XDP_PASS untouched.
 */
#include <uapi/linux/bpf.h>
#include "include/parse.h"

enum decap_counter { DECAP_OK = 0, DECAP_NOT_IPIP, DECAP_BAD_INNER, DECAP_NOT_FOR_US, DECAP_MAX = 4 };

BPF_PERCPU_ARRAY(decap_stats, __u64, DECAP_MAX);
BPF_HASH(local_addrs, __be32, __u32, 16);
BPF_ARRAY(decap_config, __u32, 1);        /* [0] = 1: only accept outer destinations in local_addrs */

static __always_inline void decap_count(__u32 k)
{
    __u64 *n = decap_stats.lookup(&k);
    if (n)
        *n += 1;
}

int lb_decap(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct pl_cursor c = { .pos = data, .end = data_end };
    struct ethhdr *eth;
    struct iphdr *outer;
    if (parse_ethhdr(&c, &eth, NULL) != bpf_htons(ETH_P_IP) || c.pos != (void *)(eth + 1)) {
        decap_count(DECAP_NOT_IPIP);
        return XDP_PASS;
    }
    if (parse_iphdr(&c, &outer) != IPPROTO_IPIP || outer->ihl != 5) {
        decap_count(DECAP_NOT_IPIP);
        return XDP_PASS;
    }
    __u32 zero = 0;
    __u32 *strict = decap_config.lookup(&zero);
    if (strict && *strict) {
        __be32 dst = outer->daddr;
        if (!local_addrs.lookup(&dst)) {
            decap_count(DECAP_NOT_FOR_US);
            return XDP_DROP;
        }
    }
    struct iphdr *inner = c.pos;
    if ((void *)(inner + 1) > data_end || inner->version != 4) {
        decap_count(DECAP_BAD_INNER);
        return XDP_DROP;
    }
    /* --8<-- [start:strip] */
    struct ethhdr saved;
    __builtin_memcpy(&saved, eth, sizeof(saved));
    if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct iphdr)))
        return XDP_DROP;
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    __builtin_memcpy(eth, &saved, sizeof(saved));
    /* --8<-- [end:strip] */
    decap_count(DECAP_OK);
    return XDP_PASS;
}
