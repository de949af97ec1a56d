BPF_PERCPU_ARRAY(proto_stats, struct counters, NUM_CATEGORIES);

static __always_inline void count_proto(u32 cat, u64 len)
{
    struct counters *c = proto_stats.lookup(&cat);
    if (c) {                     /* per-CPU slot: plain adds are safe */
        c->packets += 1;
        c->bytes += len;
    }
}
