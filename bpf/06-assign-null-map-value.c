/* 06-assign-null-map-value.c — assignment 06.A2: make the per-interface frame counter pass the verifier.
 *
 * This function is spliced into bpf/06-fixed-null-map-value.c in place of its `body` region, after
 * the map it uses:
 *   BPF_HASH(frames_by_ifindex, u32, u64, 64);   frames per ingress interface index
 *
 * TODO: the verifier rejects this function as it is. Run the check, read what the verifier
 *       says and the line it points at, and fix it — keep what the program counts, the
 *       hidden test packets check that too. (This is Verifier Diary entry "null-map-value";
 *       try it before you read the diary's page.)
 */
int xdp_frames(struct xdp_md *ctx)
{
    u32 ifindex = ctx->ingress_ifindex;
    u64 *count = frames_by_ifindex.lookup(&ifindex);
    __sync_fetch_and_add(count, 1);
    return XDP_PASS;
}
