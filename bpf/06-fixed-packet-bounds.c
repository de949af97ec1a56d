/* 06-fixed-packet-bounds.c — Verifier Diary entry 1, fixed.
 *
 * Every header is bounds-checked against data_end before its first byte is
 * read: after `if ((void *)(ip + 1) > data_end)` the verifier knows that
 * 34 bytes of packet exist on this path, so reading ip->protocol is safe.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>

BPF_ARRAY(protocols, u64, 256);

/* --8<-- [start:body] */
int xdp_protocols(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)   /* FIX: prove the IPv4 header is there */
        return XDP_PASS;
    u32 proto = ip->protocol;
    u64 *count = protocols.lookup(&proto);
    if (count)
        __sync_fetch_and_add(count, 1);
    return XDP_PASS;
}
/* --8<-- [end:body] */
