/* 11a-assign-heavy-hitters.c — assignment 11a.A2: keep the heavy flows among the candidates.
 *
 * Your code is spliced into bpf/11a-sketch.c in place of its `hh-update` region: the end of
 * sketch_update(struct flow_key *key, u32 slot), right after the Count-Min update. A sketch
 * can estimate a flow you name, but cannot list its flows: the candidate table hh remembers
 * the keys that look heavy, so userspace can name them. Read the program's top comment. You have:
 *
 *   est            this flow's estimate after this packet (the minimum of its d counters)
 *   first, second  its two candidate places (row 0's and row 1's column & (SK_HH - 1))
 *   BPF_ARRAY(hh, struct candidate, 2 * SK_HH);   slot s, place p is entry s * SK_HH + p
 *   struct candidate { struct flow_key key; u32 estimate; u32 pad; };
 *   same_key(a, b)   1 if two flow keys are equal (all 40 bytes)
 *
 * Check it from the lab: check_heavy_hitters("bpf/11a-assign-heavy-hitters.c").
 */
    /* TODO 1: with one row (SK_DEPTH < 2) there is no row 1: second = the place after first,
     *         wrapped with & (SK_HH - 1). Look up both places of `slot` in hh (NULL: return). */
    /* TODO 2: the key is already in one of them: refresh that one's estimate, and stop.
     *         Otherwise take the lighter of the two (the first one on a tie) and, only if est
     *         is larger than its estimate, copy the key into it (__builtin_memcpy) with est. */
