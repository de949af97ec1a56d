/* 11b-assign-flow-record.c — assignment 11b.A1: count a packet into its flow record.
 *
 * Your code is spliced into bpf/11b-flow.c in place of its `flow-record` region. Before it, the
 * analyzer has built the flow key of this frame. What you have:
 *
 *   key    struct flow_key: the unidirectional 5-tuple (A->B and B->A are two flows)
 *   len    u32: the frame's length in bytes
 *   flags  u32: this segment's TCP flags byte (0 for anything but TCP); FIN = 0x01, RST = 0x04
 *   now    u64: bpf_ktime_get_ns()
 *   flows  BPF_HASH(flows, struct flow_key, struct flow_value, MAX_FLOWS)
 *          struct flow_value { u64 packets, bytes, first_ns, last_ns; u32 tcp_flags, ended; }
 *   count(STAT_FLOWS or STAT_TABLE_FULL, 1)          the per-CPU counters
 *   emit(ctx, EV_FLOW_START or EV_FLOW_END, &key, value pointer, now, len)   a ring-buffer event
 *
 * Check it from the lab: check_flow_record("bpf/11b-assign-flow-record.c").
 */
    /* TODO 1: look the key up in flows. Found: add 1 packet and len bytes (several CPUs may update
     *         the same record at once: __sync_fetch_and_add), set last_ns, OR the flags in.
     *         The first FIN or RST ends the flow: set ended and emit EV_FLOW_END once. */
    /* TODO 2: not found: a new record (1 packet, len bytes, first = last = now, the flags, ended if
     *         FIN or RST). If flows.update() succeeds: count(STAT_FLOWS, 1), emit EV_FLOW_START (and
     *         EV_FLOW_END too if it has already ended). If it fails, the table is full:
     *         count(STAT_TABLE_FULL, 1). */
