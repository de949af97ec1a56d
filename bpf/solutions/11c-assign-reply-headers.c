static __always_inline void reply_headers(struct ethhdr *eth, struct iphdr *ip, struct udphdr *udp,
                                          struct bootp *bp, __be32 yiaddr, struct pool *pool)
{
    __be32 daddr;
    if (bp->ciaddr) {
        daddr = bp->ciaddr;
        __builtin_memcpy(eth->h_dest, bp->chaddr, ETH_ALEN);
    } else if (bp->flags & bpf_htons(0x8000)) {
        daddr = 0xffffffff;
        __builtin_memset(eth->h_dest, 0xff, ETH_ALEN);
    } else {
        daddr = yiaddr;
        __builtin_memcpy(eth->h_dest, bp->chaddr, ETH_ALEN);
    }
    __builtin_memcpy(eth->h_source, pool->server_mac, ETH_ALEN);

    ip->version = 4;
    ip->ihl = 5;
    ip->tos = 0;
    ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*udp) + DH_BOOTP_LEN);
    ip->id = 0;
    ip->frag_off = 0;
    ip->ttl = 64;
    ip->protocol = IPPROTO_UDP;
    ip->saddr = pool->server_id;
    ip->daddr = daddr;
    ip->check = pl_ipv4_csum(ip);

    udp->source = bpf_htons(67);
    udp->dest = bpf_htons(68);
    udp->len = bpf_htons(sizeof(*udp) + DH_BOOTP_LEN);
}
