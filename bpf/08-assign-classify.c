    /* 08-assign-classify.c — assignment 08.A2: the firewall's rule-matching core.
     *
     * Spliced into xdp_firewall() in bpf/08-xdp-firewall.c (region `classify`) — read the
     * comment at the top of that file first. The five lookups are done for you: cs, cd, cdp,
     * csp and cl are the classes of the packet's source and destination address, destination
     * and source port, and protocol + TCP flags. Each class is a bitmap over all rules,
     * compressed: sum[k] (k < FW_SUMMARY) says which 64-bit words of block k are non-zero,
     * and fw_word(class, pool_base, k, below) reads the word whose summary bit is the lowest
     * bit of below + 1 (below = (that bit) - 1). fw_popcount() and fw_ctz() are there too.
     *
     * Then the firewall's own verdict tests run on your code: the first failing frame is named.
     */
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
    /* TODO: find the LOWEST rule bit set in all five bitmaps (rule order = priority):
     *       for each block k, AND the five summaries; for each candidate word (lowest first),
     *       AND the five words; the first non-zero result holds the answer:
     *       bit = (k * 64 + <index of the word in the block>) * 64 + <lowest set bit of the AND>,
     *       then found = 1. Bound every loop by a constant (FW_SUMMARY, 64) for the verifier. */
    if (!found)
        goto nomatch;
