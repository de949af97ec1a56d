    /* 09-assign-nat.c — assignment 09.A2: the NAT rewrite of the load balancer.
     *
     * Spliced into lb_xdp() in bpf/09-lb.c (region `nat`). The backend is chosen: `be` (be->addr,
     * be->port, network byte order), the client's flow is `key`, `new_conn` says it is its first
     * packet, `ip` is the IPv4 header, `dport_p` and `l4check` point at the TCP/UDP destination
     * port and checksum, `udp` is non-NULL for UDP. From include/csum.h:
     *
     *   pl_csum_replace4(&sum, old32, new32)   pl_csum_replace2(&sum, old16, new16)
     *   pl_udp_csum_replace4 / pl_udp_csum_replace2: the same, but a UDP checksum of 0 stays 0
     *
     * TODO 1: for a new connection, remember the way back: nat_rev[backend -> client] = key
     *         (struct lb_flow { src, dst, sport, dport, proto }: the reply's addresses and ports).
     * TODO 2: rewrite destination address and port to the backend's, and update the IPv4 header
     *         checksum and the TCP/UDP checksum (the pseudo-header holds the address) incrementally.
     */
    if (!(be->flags & BE_F_NEXTHOP) || (be->ifindex != ctx->ingress_ifindex && !(be->flags & BE_F_REDIRECT))) {
        lb_event(EV_XMIT_KERNEL);
        return XDP_PASS;
    }
    __builtin_memcpy(eth->h_dest, be->dmac, ETH_ALEN);
    __builtin_memcpy(eth->h_source, be->smac, ETH_ALEN);
    return lb_xmit(ctx, be->ifindex);
