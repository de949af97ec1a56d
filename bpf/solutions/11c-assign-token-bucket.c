static __always_inline int take_token(struct mac_key *key, __u32 rate, __u32 burst)
{
    if (rate == 0)
        return 1;
    __u64 now = bpf_ktime_get_ns();
    __u64 cap = (__u64)(burst ? burst : 1) * NS_PER_SEC;
    struct bucket *b = buckets.lookup(key);
    if (!b) {
        struct bucket fresh = { .last_ns = now, .tokens = cap - NS_PER_SEC };
        buckets.update(key, &fresh);
        return 1;
    }
    __u64 elapsed = now - b->last_ns;
    if (elapsed > 60 * NS_PER_SEC)
        elapsed = 60 * NS_PER_SEC;
    __u64 tokens = b->tokens + elapsed * rate;
    if (tokens > cap)
        tokens = cap;
    b->last_ns = now;
    if (tokens < NS_PER_SEC) {
        b->tokens = tokens;
        return 0;
    }
    b->tokens = tokens - NS_PER_SEC;
    return 1;
}
