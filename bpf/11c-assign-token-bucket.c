/* 11c-assign-token-bucket.c — assignment 11c.A1: the per-MAC token bucket of the DHCP fast path.
 *
 * Your code is spliced into bpf/11c-dhcp-fastpath.c in place of its `take-token` region. The
 * program calls take_token() before any lookup: once per DHCP frame with the sender's
 * (MAC, VLAN) key and config's mac_rate/mac_burst, and once more, with one shared key
 * (vlan 0xffff) and slow_rate/slow_burst, for a frame headed for the slow path. Return 1 to
 * let the frame through, 0 to drop it (the caller counts the drop in `stats`).
 *
 *   struct bucket { __u64 last_ns; __u64 tokens; };   one bucket per key, in the LRU hash `buckets`
 *
 * Tokens are kept in billionths (one frame costs NS_PER_SEC = 1e9 of them), so a refill is
 * elapsed_ns * rate with no division. The bucket holds at most `burst` frames (a burst of 0
 * means 1); a rate of 0 means no limit. Time: bpf_ktime_get_ns().
 *
 * Check it from the lab: check_token_bucket("bpf/11c-assign-token-bucket.c").
 */
static __always_inline int take_token(struct mac_key *key, __u32 rate, __u32 burst)
{
    /* TODO 1: a rate of 0 switches the bucket off: every frame passes. */
    /* TODO 2: look up key's bucket in `buckets`. A key seen for the first time gets a full
     *         bucket (burst frames, in 1e-9 units) minus this frame's token; store it with
     *         buckets.update(key, &fresh) and let the frame through. */
    /* TODO 3: refill: add (now - last_ns) * rate, cap at the burst, and move last_ns to now.
     *         (Cap the elapsed time, at 60 s say, so the product cannot overflow.) */
    /* TODO 4: spend one frame's token if there is one (return 1); else keep what is left
     *         and return 0. */
    return 1;
}
