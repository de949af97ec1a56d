    u64 h = key_digest(key);
    u32 est = 0xffffffff;
    u32 first = 0, second = 0;
#pragma unroll
    for (int i = 0; i < SK_DEPTH && i < 8; i++) {
        u32 col = fmix64(h ^ row_seed(i)) >> (64 - SK_WIDTH_LOG2);
        u32 idx = slot * SK_CELLS + i * SK_WIDTH + col;
        u32 *c = cms.lookup(&idx);
        if (!c)
            return;
        /* bcc compiles for the BPF ISA without fetching atomics, so the add
         * cannot return the old value ("Invalid usage of the XADD return
         * value"): add, then read. Another CPU's add in between only raises
         * the estimate, which a Count-Min estimate may do anyway. */
        __sync_fetch_and_add(c, 1);
        u32 now = *c;
        if (now < est)
            est = now;
        if (i == 0)
            first = col & (SK_HH - 1);
        if (i == 1)
            second = col & (SK_HH - 1);
    }
