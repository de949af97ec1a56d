/* 06-fail-map-out-of-range.c — Verifier Diary entry 5: REJECTED on purpose.
 *
 * Why it fails: a histogram of frame sizes in 128-byte buckets, 16 buckets.
 * The author "knows" frames are at most 2048 bytes, but the verifier only knows
 * that the length is a 32-bit number, so len / 128 can index far beyond the
 * 128-byte map value ("invalid access to map value ... value_size=128").
 * The fix is 06-fixed-map-out-of-range.c.
 */
#include <uapi/linux/bpf.h>

#define BUCKETS 16

struct size_histogram {
    u64 bucket[BUCKETS];
};

BPF_ARRAY(frame_sizes, struct size_histogram, 1);

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
    h->bucket[b] += 1;                 /* REJECTED HERE: b is not bounded by BUCKETS */
    return XDP_PASS;
}
