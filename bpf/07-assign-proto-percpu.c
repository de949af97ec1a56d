/* 07-assign-proto-percpu.c — assignment 07.A1: count every frame by protocol in a per-CPU map.
 *
 * Your code is spliced into bpf/07-xdp-counter.c in place of its `count-proto` region.
 * The counter parses each frame, picks its category (enum category: CAT_NON_IP,
 * CAT_IPV4_TCP, ... NUM_CATEGORIES) and calls count_proto(category, frame length).
 * Available: struct counters { u64 packets; u64 bytes; };
 *
 * Check it from the lab: check_proto_percpu("bpf/07-assign-proto-percpu.c").
 */

/* TODO 1: declare proto_stats, a per-CPU array (BPF_PERCPU_ARRAY) of struct counters
 *         with one slot per category (NUM_CATEGORIES). */

static __always_inline void count_proto(u32 cat, u64 len)
{
    /* TODO 2: look up slot `cat` in proto_stats (the verifier insists: check for NULL),
     *         then add one packet and `len` bytes. Each CPU has its own copy of a
     *         per-CPU slot, so plain += is safe: no atomics needed. */
}
