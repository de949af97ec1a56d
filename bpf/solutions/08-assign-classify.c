    /* Five lookups give five classes. */
    struct fw_class *cs = fw_class_of(slot, fw_addr.lookup(&skey));
    struct fw_class *cd = fw_class_of(slot, fw_addr.lookup(&dkey));
    u32 pidx = (slot * 2 + 0) * FW_PORTS + dport;
    struct fw_class *cdp = fw_class_of(slot, fw_port.lookup(&pidx));
    pidx = (slot * 2 + 1) * FW_PORTS + sport;
    struct fw_class *csp = fw_class_of(slot, fw_port.lookup(&pidx));
    l4idx += slot * FW_L4_SIZE;
    struct fw_class *cl = fw_class_of(slot, fw_l4.lookup(&l4idx));
    if (!cs || !cd || !cdp || !csp || !cl)
        goto nomatch;

    /* AND the summaries; for each word that is non-zero in all five, AND the words. */
    u32 pool_base = slot * FW_POOL_WORDS;
    u32 bit = 0;
    int found = 0;
#pragma unroll
    for (int k = 0; k < FW_SUMMARY; k++) {
        u64 cand = cs->sum[k] & cd->sum[k] & cdp->sum[k] & csp->sum[k] & cl->sum[k];
        for (int i = 0; i < 64; i++) {
            if (!cand || found)
                break;
            u64 below = (cand & -cand) - 1;
            u64 w = fw_word(cs, pool_base, k, below) & fw_word(cd, pool_base, k, below)
                  & fw_word(cdp, pool_base, k, below) & fw_word(csp, pool_base, k, below)
                  & fw_word(cl, pool_base, k, below);
            if (w) {
                bit = (k * 64 + fw_popcount(below)) * 64 + fw_ctz(w);
                found = 1;
            }
            cand &= cand - 1;
        }
    }
    if (!found)
        goto nomatch;
