    if (later_fragment) {
        /* counted in a record of its own, ports 0: reassembly is userspace's job */
    } else if (proto == IPPROTO_TCP) {
        struct tcphdr *th;
        if (parse_tcphdr(&c, &th) == 0) {
            key.sport = bpf_ntohs(th->source);
            key.dport = bpf_ntohs(th->dest);
            flags = ((u8 *)th)[13];
        }
    } else if (proto == IPPROTO_UDP) {
        struct udphdr *uh;
        if (parse_udphdr(&c, &uh) == 0) {
            key.sport = bpf_ntohs(uh->source);
            key.dport = bpf_ntohs(uh->dest);
        }
    } else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
        struct icmphdr *ih;
        if (parse_icmphdr(&c, &ih) >= 0)
            key.dport = (u16)ih->type << 8 | ih->code;
    }
