/* 06-fail-exercise-two-lookups.c — the Verifier Diary exercise: REJECTED on purpose.
 *
 * The lab asks you to load this program, read the verifier's complaint, and
 * name (a) which diary entry it is an instance of, (b) the line the verifier
 * points at, and (c) the line where the actual mistake is — they differ: the
 * verifier reports where an unsafe access happens, not where a check is missing.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>

struct counters {
    u64 frames;
    u64 bytes;
};

BPF_HASH(by_ifindex, u32, struct counters, 64);
BPF_HASH(by_queue, u32, struct counters, 64);

int xdp_two_lookups(struct xdp_md *ctx)
{
    u32 len = ctx->data_end - ctx->data;
    u32 ifindex = ctx->ingress_ifindex;
    u32 queue = ctx->rx_queue_index;
    struct counters zero = {};

    by_ifindex.lookup_or_try_init(&ifindex, &zero);
    by_queue.lookup_or_try_init(&queue, &zero);

    struct counters *per_if = by_ifindex.lookup(&ifindex);
    struct counters *per_queue = by_queue.lookup(&queue);
    if (!per_if)
        return XDP_PASS;
    if (!per_if)
        return XDP_PASS;
    __sync_fetch_and_add(&per_if->frames, 1);
    __sync_fetch_and_add(&per_if->bytes, len);
    __sync_fetch_and_add(&per_queue->frames, 1);
    __sync_fetch_and_add(&per_queue->bytes, len);
    return XDP_PASS;
}
