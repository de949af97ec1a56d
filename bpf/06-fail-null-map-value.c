/* 06-fail-null-map-value.c — Verifier Diary entry 4: REJECTED on purpose.
 *
 * Why it fails: a hash-map lookup returns NULL when the key is absent (here:
 * the first frame on an interface). The pointer is dereferenced by the atomic
 * add without a NULL check, so the verifier sees a possible NULL dereference
 * of a 'map_value_or_null' pointer. (Kernels >= 6.14 know that an ARRAY lookup
 * with a constant in-range key cannot fail, so this bug needs a hash map.)
 * The fix is 06-fixed-null-map-value.c.
 */
#include <uapi/linux/bpf.h>

BPF_HASH(frames_by_ifindex, u32, u64, 64);

int xdp_frames(struct xdp_md *ctx)
{
    u32 ifindex = ctx->ingress_ifindex;
    u64 *count = frames_by_ifindex.lookup(&ifindex);
    __sync_fetch_and_add(count, 1);    /* REJECTED HERE: count may be NULL */
    return XDP_PASS;
}
