    if (eth_type == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6;
        __u16 frag_off = 0;
        int l4 = parse_ip6hdr(c, &ip6, &frag_off);
        if (l4 < 0)
            return PROTO_MALFORMED;
        if (l4 == IPPROTO_ICMPV6) {
            struct icmp6hdr *icmp6;
            if (!frag_off && parse_icmp6hdr(c, &icmp6) < 0)
                return PROTO_MALFORMED;
            return PROTO_ICMPV6;
        }
        if (l4 == IPPROTO_TCP) {
            struct tcphdr *tcp;
            if (!frag_off && parse_tcphdr(c, &tcp) < 0)
                return PROTO_MALFORMED;
            return PROTO_TCP;
        }
        if (l4 == IPPROTO_UDP) {
            struct udphdr *udp;
            if (!frag_off && parse_udphdr(c, &udp) < 0)
                return PROTO_MALFORMED;
            return PROTO_UDP;
        }
        return PROTO_IPV6_OTHER;
    }
