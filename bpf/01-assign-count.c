    /* 01-assign-count.c — assignment 01.A2: count the frame.
     *
     * These lines are spliced into xdp_proto_counter() in bpf/01-xdp-proto-counter.c (region
     * `count`), after classify() has put the frame's counter number in `key`:
     *
     *   BPF_PERCPU_ARRAY(stats, struct proto_stats, PROTO_MAX);
     *   struct proto_stats { __u64 packets; __u64 bytes; };
     *   the frame is the bytes from `data` to `data_end`
     *
     * TODO: add one packet and the frame's length in bytes to counter `key`.
     *       (stats.lookup(&key) gives the pointer to this CPU's copy — or NULL.)
     */
