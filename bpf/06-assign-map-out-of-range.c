/* 06-assign-map-out-of-range.c — assignment 06.A3: make the frame-size histogram pass the verifier.
 *
 * This function is spliced into bpf/06-fixed-map-out-of-range.c in place of its `body` region, after
 * the map it uses:
 *   struct size_histogram { u64 bucket[BUCKETS]; };   BUCKETS = 16 buckets of 128 bytes;
 *   BPF_ARRAY(frame_sizes, struct size_histogram, 1);  the last bucket counts every larger frame
 *
 * TODO: the verifier rejects this function as it is. Run the check, read what the verifier
 *       says and the line it points at, and fix it — keep what the program counts, the
 *       hidden test packets check that too. (This is Verifier Diary entry "map-out-of-range";
 *       try it before you read the diary's page.)
 */
int xdp_sizes(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    u32 len = data_end - data;
    u32 zero = 0;
    struct size_histogram *h = frame_sizes.lookup(&zero);
    if (!h)
        return XDP_PASS;
    u32 b = len / 128;
    h->bucket[b] += 1;
    return XDP_PASS;
}
