    /* NAT: VIP:port -> backend:port, both checksums updated incrementally */
    if (new_conn) {
        struct lb_flow rk = { .src = be->addr, .dst = key.src, .sport = be->port, .dport = key.sport,
                              .proto = l4 };
        nat_rev.update(&rk, &key);
    }
    pl_csum_replace4(&ip->check, ip->daddr, be->addr);
    if (udp) {                                      /* 0 = no checksum: stays 0 */
        pl_udp_csum_replace4(l4check, ip->daddr, be->addr);
        pl_udp_csum_replace2(l4check, *dport_p, be->port);
    } else {
        pl_csum_replace4(l4check, ip->daddr, be->addr);
        pl_csum_replace2(l4check, *dport_p, be->port);
    }
    ip->daddr = be->addr;
    *dport_p = be->port;
    if (!(be->flags & BE_F_NEXTHOP) || (be->ifindex != ctx->ingress_ifindex && !(be->flags & BE_F_REDIRECT))) {
        lb_event(EV_XMIT_KERNEL);
        return XDP_PASS;
    }
    __builtin_memcpy(eth->h_dest, be->dmac, ETH_ALEN);
    __builtin_memcpy(eth->h_source, be->smac, ETH_ALEN);
    return lb_xmit(ctx, be->ifindex);
