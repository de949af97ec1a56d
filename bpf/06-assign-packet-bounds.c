/* 06-assign-packet-bounds.c — assignment 06.A1: make the IPv4 protocol counter pass the verifier.
 *
 * This function is spliced into bpf/06-fixed-packet-bounds.c in place of its `body` region, after
 * the map it uses:
 *   BPF_ARRAY(protocols, u64, 256);   frames per IPv4 protocol number
 *
 * TODO: the verifier rejects this function as it is. Run the check, read what the verifier
 *       says and the line it points at, and fix it — keep what the program counts, the
 *       hidden test packets check that too. (This is Verifier Diary entry "packet-bounds";
 *       try it before you read the diary's page.)
 */
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
    u32 proto = ip->protocol;
    u64 *count = protocols.lookup(&proto);
    if (count)
        __sync_fetch_and_add(count, 1);
    return XDP_PASS;
}
