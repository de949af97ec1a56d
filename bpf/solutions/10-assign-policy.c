static __always_inline int allowed_by_rules(__u32 gen, __u32 dir, __be32 pod_ip, __be32 peer, struct pkt *p)
{
    struct rule_key k = {.prefixlen = 128, .gen = gen, .dir = dir, .pod_ip = pod_ip, .peer_ip = peer};
    struct portset *ps = rules.lookup(&k);
    if (!ps)
        return 0;
    if (ps->any)
        return 1;
    if (!p->has_port)
        return 0;
    __u16 port = bpf_ntohs(p->dport);
    for (int i = 0; i < MAX_RANGES; i++) {
        if (i >= ps->n)
            break;
        if (ps->r[i].proto == p->proto && port >= ps->r[i].lo && port <= ps->r[i].hi)
            return 1;
    }
    return 0;
}
