static __always_inline int ct_fresh(struct flow_key *k)
{
    struct ct_val *v = conntrack.lookup(k);
    if (!v)
        return 0;
    __u64 now = bpf_ktime_get_ns();
    if (now - v->last_seen_ns > CT_TIMEOUT_NS)
        return 0;
    v->last_seen_ns = now;
    __sync_fetch_and_add(&v->packets, 1);
    return 1;
}

static __always_inline void ct_record(struct pkt *p, __u8 side)
{
    struct flow_key k = {.src = p->src, .dst = p->dst, .sport = p->sport, .dport = p->dport,
                         .proto = p->proto, .side = side};
    struct ct_val *v = conntrack.lookup(&k);
    __u64 now = bpf_ktime_get_ns();
    if (v) {
        v->last_seen_ns = now;
        __sync_fetch_and_add(&v->packets, 1);
        return;
    }
    struct ct_val fresh = {.last_seen_ns = now, .packets = 1};
    conntrack.update(&k, &fresh);
}
