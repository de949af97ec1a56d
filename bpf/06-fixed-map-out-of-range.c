/* 06-fixed-map-out-of-range.c — Verifier Diary entry 5, fixed.
 *
 * The index is clamped to the last bucket before it is used, so the verifier
 * can prove the access stays inside the 128-byte value (bucket 15 then means
 * "1920 bytes or more").
 */
#include <uapi/linux/bpf.h>

#define BUCKETS 16

struct size_histogram {
    u64 bucket[BUCKETS];
};

BPF_ARRAY(frame_sizes, struct size_histogram, 1);

/* --8<-- [start:body] */
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
    if (b >= BUCKETS)                  /* FIX: a bound the verifier can see */
        b = BUCKETS - 1;
    h->bucket[b] += 1;
    return XDP_PASS;
}
/* --8<-- [end:body] */
