/* 06-fixed-null-map-value.c — Verifier Diary entry 4, fixed.
 *
 * Test the pointer before using it; when the key is absent, insert it. After
 * `if (count)` the verifier knows the pointer is a valid map value.
 */
#include <uapi/linux/bpf.h>

BPF_HASH(frames_by_ifindex, u32, u64, 64);

/* --8<-- [start:body] */
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
/* --8<-- [end:body] */
