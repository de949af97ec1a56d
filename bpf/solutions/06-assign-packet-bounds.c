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
