/* 06-fixed-stack-too-large.bpf.c — Verifier Diary entry 8, fixed.
 * (libbpf style: compiled with clang against vmlinux.h, loaded with bpftool.)
 *
 * The caller's 320-byte scratch buffer moves out of the stack into a
 * one-slot per-CPU array map: each CPU gets its own copy, no locking is needed
 * (XDP never migrates between CPUs mid-run), and the stack keeps only the
 * callee's frame.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define WORDS 40

struct scratch_buf {
    __u64 word[WORDS];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);    /* FIX: big buffers live in a per-CPU map */
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct scratch_buf);
} scratch_space SEC(".maps");

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
    __u32 zero = 0;
    struct scratch_buf *scratch = bpf_map_lookup_elem(&scratch_space, &zero);
    if (!scratch)
        return XDP_PASS;
    for (int i = 0; i < WORDS; i++)
        scratch->word[i] = i * ctx->ingress_ifindex;
    __u64 sum = checksum_words(ctx) + scratch->word[ctx->ingress_ifindex & 31];
    __u64 *out = bpf_map_lookup_elem(&result, &zero);
    if (out)
        *out = sum;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
