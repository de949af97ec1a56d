    /* 01-assign-ipv6.c — assignment 01.A1: extend the protocol counter to IPv6.
     *
     * These lines are spliced into classify() in bpf/01-xdp-proto-counter.c, right after its
     * IPv4 branch (region `ipv6`). Until you add the IPv6 branch, every IPv6 frame falls
     * through to `return PROTO_OTHER;` below it. `c` is the cursor after the Ethernet header,
     * `eth_type` the EtherType in network byte order. Follow the IPv4 branch above you:
     *
     *   parse_ip6hdr(c, &ip6, &frag_off)   -> next header (after up to four extension headers),
     *                                         or < 0 if a header is cut short; frag_off != 0 for a
     *                                         later fragment (no transport header inside)
     *   parse_icmp6hdr / parse_tcphdr / parse_udphdr (c, &hdr)  -> < 0 if the header is cut short
     *
     * TODO: if the frame is IPv6, return PROTO_ICMPV6, PROTO_TCP or PROTO_UDP for those
     *       transport protocols, PROTO_IPV6_OTHER for any other, and PROTO_MALFORMED when a
     *       header it announces is cut short.
     */
