/* 06-fail-stack-too-large.bpf.c — Verifier Diary entry 8: REJECTED on purpose.
 * (libbpf style: compiled with clang against vmlinux.h, loaded with bpftool.)
 *
 * Why it fails: every BPF program has a 512-byte stack. xdp_scratch() keeps a
 * 320-byte buffer and calls checksum_words(), which keeps another 320 bytes;
 * while the callee runs both frames are live. clang only checks one function
 * at a time, the verifier adds up the whole call chain:
 * "combined stack size of 2 calls is 656. Too large".
 * (A single function over 512 bytes is already refused by clang: "Looks like
 * the BPF stack limit of 512 bytes is exceeded".)
 * The fix is 06-fixed-stack-too-large.bpf.c.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define WORDS 40

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} result SEC(".maps");

static __noinline __u64 checksum_words(struct xdp_md *ctx)
{
    volatile __u64 words[WORDS];                /* 320 bytes in the callee's frame */
    for (int i = 0; i < WORDS; i++)
        words[i] = i ^ ctx->rx_queue_index;
    __u64 sum = 0;
    for (int i = 0; i < WORDS; i++)
        sum += words[i];
    return sum;
}

SEC("xdp")
int xdp_scratch(struct xdp_md *ctx)
{
    volatile __u64 scratch[WORDS];              /* 320 bytes in the caller's frame */
    for (int i = 0; i < WORDS; i++)
        scratch[i] = i * ctx->ingress_ifindex;
    __u64 sum = checksum_words(ctx) + scratch[ctx->ingress_ifindex & 31];   /* REJECTED HERE: 320 + 320 bytes live at once */
    __u32 zero = 0;
    __u64 *out = bpf_map_lookup_elem(&result, &zero);
    if (out)
        *out = sum;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
