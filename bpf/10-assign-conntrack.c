/* 10-assign-conntrack.c — assignment 10.A2: let replies through (the dataplane's connection tracker).
 *
 * Spliced into bpf/10-netpol.c (region `conntrack`). When a hook lets a packet through under
 * policy it calls ct_record(p, side); a packet going the other way is first checked with
 * ct_fresh(&reversed key): a reply of a connection that was allowed passes without a rule.
 *
 *   BPF_TABLE("lru_hash", struct flow_key, struct ct_val, conntrack, 65536);
 *   struct flow_key { __be32 src, dst; __be16 sport, dport; u8 proto; u8 side; u16 pad; };
 *   struct ct_val   { u64 last_seen_ns; u64 packets; };
 *   CT_TIMEOUT_NS: an entry older than this is stale; bpf_ktime_get_ns() is the clock
 *
 * TODO 1: ct_fresh(): 1 if the key has an entry seen within CT_TIMEOUT_NS (then refresh its
 *         time and count the packet: other CPUs share the entry, use an atomic add), else 0.
 * TODO 2: ct_record(): the key of packet p for `side` (zero the padding: it is part of the
 *         key); refresh and count an existing entry, or insert a fresh one.
 */
static __always_inline int ct_fresh(struct flow_key *k)
{
    return 0;
}

static __always_inline void ct_record(struct pkt *p, __u8 side)
{
}
