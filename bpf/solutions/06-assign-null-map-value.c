int xdp_frames(struct xdp_md *ctx)
{
    u32 ifindex = ctx->ingress_ifindex;
    u64 *count = frames_by_ifindex.lookup(&ifindex);
    if (count) {                       /* FIX: NULL means "no entry yet" */
        __sync_fetch_and_add(count, 1);
    } else {
        u64 one = 1;
        frames_by_ifindex.update(&ifindex, &one);
    }
    return XDP_PASS;
}
