/* 10-assign-policy.c — assignment 10.A1: the NetworkPolicy lookup of the pod dataplane.
 *
 * Spliced into bpf/10-netpol.c (region `policy`); read its top comment first. Both tc hooks call
 * allowed_by_rules() for an isolated pod: may `pod_ip` talk to `peer` in direction `dir`
 * (DIR_INGRESS / DIR_EGRESS) under policy generation `gen`, for the packet `p`
 * (p->proto, p->has_port, p->dport in network byte order)? The control plane wrote:
 *
 *   BPF_LPM_TRIE(rules, struct rule_key, struct portset, 65536);
 *   struct rule_key { u32 prefixlen; u32 gen; u32 dir; __be32 pod_ip; __be32 peer_ip; };
 *       prefixlen counts bits from `gen` on: 96 (gen, dir, pod_ip always match) + peer prefix
 *   struct portset { u8 any; u8 n; u16 pad; struct port_range r[MAX_RANGES]; };
 *   struct port_range { u8 proto; u8 pad; u16 lo; u16 hi; };   (host byte order, inclusive)
 *
 * TODO: look up the longest prefix matching the peer (a full-length key: prefixlen 128);
 *       no entry: denied. `any`: allowed. Otherwise allowed only when the packet has a port
 *       and one of the first n ranges holds its protocol and destination port. Bound the loop
 *       by MAX_RANGES for the verifier. Return 1 for allowed, 0 for denied.
 */
static __always_inline int allowed_by_rules(__u32 gen, __u32 dir, __be32 pod_ip, __be32 peer, struct pkt *p)
{
    return 0;
}
