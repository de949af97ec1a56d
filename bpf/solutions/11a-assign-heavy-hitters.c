    if (SK_DEPTH < 2)
        second = (first + 1) & (SK_HH - 1);
    /* Two candidate places: keep the key if it is there, or if it now outweighs
     * the lighter of the two. Races between CPUs may tear an entry: userspace
     * re-estimates every candidate from the sketch, so a torn key only costs a
     * lookup. */
    u32 ia = slot * SK_HH + first, ib = slot * SK_HH + second;
    struct candidate *a = hh.lookup(&ia);
    struct candidate *b = hh.lookup(&ib);
    if (!a || !b)
        return;
    if (same_key(&a->key, key)) {
        a->estimate = est;
        return;
    }
    if (same_key(&b->key, key)) {
        b->estimate = est;
        return;
    }
    struct candidate *lighter = a->estimate <= b->estimate ? a : b;
    if (est > lighter->estimate) {
        __builtin_memcpy(&lighter->key, key, sizeof(*key));
        lighter->estimate = est;
    }
