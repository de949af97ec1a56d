static __always_inline int arp_reply(struct ethhdr *eth, struct arphdr *arp, struct arp_eth_ipv4 *body,
                                     struct arp_config *cfg)
{
    arp->ar_op = bpf_htons(ARPOP_REPLY);
    __builtin_memcpy(body->tha, body->sha, ETH_ALEN);   /* the asker becomes the target */
    __builtin_memcpy(body->tpa, body->spa, 4);
    __builtin_memcpy(body->sha, cfg->mac, ETH_ALEN);    /* we are the sender */
    __builtin_memcpy(body->spa, cfg->ip, 4);
    __builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, cfg->mac, ETH_ALEN);
    u32 zero = 0;
    u64 *n = arp_replies.lookup(&zero);
    if (n)
        *n += 1;
    return XDP_TX;
}
