/* 11b-assign-flow-ports.c — assignment 11b.A2: finish the flow key with the ports (and TCP flags).
 *
 * Your code is spliced into bpf/11b-flow.c in place of its `flow-ports` region. Before it, the
 * analyzer has parsed Ethernet and the IPv4 or IPv6 header with include/parse.h and filled in
 * key.family, key.saddr, key.daddr and key.proto. What you have:
 *
 *   c               struct pl_cursor, at the first byte after the IP header(s)
 *   proto           the L4 protocol (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, ...)
 *   later_fragment  non-zero for an IP fragment after the first: it carries no L4 header
 *   key             struct flow_key { u8 family, proto; u16 sport, dport; u16 pad; u8 saddr[16], daddr[16]; }
 *   flags           u32, 0: the TCP flags byte of this segment goes here (the record ORs them)
 *   parse_tcphdr(&c, &th), parse_udphdr(&c, &uh)   0 when the whole header is in the packet
 *   parse_icmphdr(&c, &ih)                          >= 0 when it is (ICMPv6 starts the same way)
 *
 * The key holds ports in HOST byte order. For ICMP and ICMPv6: sport 0, dport = type << 8 | code.
 * A truncated L4 header, a later fragment or another protocol: the ports stay 0 (still counted).
 *
 * Check it from the lab: check_flow_ports("bpf/11b-assign-flow-ports.c").
 */
    /* TODO 1: a later fragment has no L4 header: leave the ports 0. */
    /* TODO 2: TCP: sport and dport from the TCP header (bpf_ntohs), and the flags byte
     *         (byte 13 of the header: CWR ECE URG ACK PSH RST SYN FIN) into `flags`. */
    /* TODO 3: UDP: sport and dport. */
    /* TODO 4: ICMP and ICMPv6: dport = type << 8 | code. Check every header's bounds (the parse_*
     *         helpers do): the verifier refuses a read it cannot prove is inside the packet. */
