/* 11a-assign-cms-update.c — assignment 11a.A1: the Count-Min Sketch update.
 *
 * Your code is spliced into bpf/11a-sketch.c in place of its `cms-update` region: the first
 * part of sketch_update(struct flow_key *key, u32 slot), called for every packet counted in
 * the sketch of `slot` (0 or 1). Read the program's top comment first. Available:
 *
 *   BPF_ARRAY(cms, u32, 2 * SK_CELLS);   slot s, row i, column col is cell
 *                                        s * SK_CELLS + i * SK_WIDTH + col
 *   key_digest(key)   the key's 64-bit digest (read the 40-byte key once)
 *   row_seed(i)       row i's seed;  fmix64(x): murmur3's finaliser
 *   SK_DEPTH rows (at most 8), SK_WIDTH = 1 << SK_WIDTH_LOG2 columns, SK_HH candidates
 *
 * The code after yours (the heavy-hitter candidates) needs three variables from you:
 *   est            the estimate: the SMALLEST of the d counters after this packet's add
 *   first, second  the candidate places: row 0's and row 1's column, each & (SK_HH - 1)
 *
 * Check it from the lab: check_cms_update("bpf/11a-assign-cms-update.c").
 */
    u32 est = 0;
    u32 first = 0, second = 0;
    /* TODO 1: h = key_digest(key), once. Then for each row i (a loop the compiler unrolls:
     *         #pragma unroll, bounded by SK_DEPTH and 8): its column is the TOP
     *         SK_WIDTH_LOG2 bits of fmix64(h ^ row_seed(i)) (a shift, no modulo). */
    /* TODO 2: look up that row's cell of `slot` in cms (NULL: return), add 1 atomically
     *         (__sync_fetch_and_add: other CPUs count into the same cell; bcc cannot use
     *         its return value, so read *c after the add), and keep the minimum in est
     *         (start est at 0xffffffff, not 0). Set first and second from rows 0 and 1. */
