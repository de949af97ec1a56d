/* 10-netpol.c — Kubernetes NetworkPolicy, enforced on the node side of each pod's veth.
 *
 * Two tc (clsact, direct-action) programs share every map below:
 *
 *   netpol_from_pod  on tc *ingress* of the pod's host veth: packets the pod sends,
 *                    i.e. the pod's EGRESS policy;
 *   netpol_to_pod    on tc *egress* of the pod's host veth: packets delivered to the
 *                    pod, i.e. the pod's INGRESS policy.
 *
 * The control plane (packetlab/tools/netpol) resolves label selectors to addresses and
 * writes, per isolated pod and direction, LPM entries
 *     (generation, direction, pod IP, peer prefix) -> port set
 * A packet is checked against its pod's entry for the peer address; replies of a
 * connection one side already allowed are recognised in `conntrack`.
 *
 * Updates are atomic: the control plane writes a complete new generation of
 * `pods` and `rules`, flips config.gen, then deletes the old one — a packet sees
 * either the old policy or the new, never half of each.
 *
 * Services: a ClusterIP is translated to a backend pod by the load balancer
 * (bpf/09-lb.c, XDP on the same veths) *before* these tc programs see a packet
 * from a client, so policy is checked against the backend pod — as Kubernetes
 * specifies. Replies come back already translated to the ClusterIP; the
 * `services` map (ClusterIP:port -> backends) lets both hooks recognise them as
 * replies of a connection that was allowed to the backend.
 *
 * IPv4 is enforced; for an isolated pod other IPv6 than neighbour discovery is
 * dropped (the pods here are IPv4-only; link-local IPv6 must not bypass policy).
 */
#include "include/parse.h"
#include <uapi/linux/pkt_cls.h>

#define DIR_INGRESS 0
#define DIR_EGRESS 1
#define SIDE_EGRESS 1           /* conntrack entry approved at the initiator's from-pod hook */
#define SIDE_INGRESS 2          /* approved at the receiver's to-pod hook */
#define MAX_RANGES 16
#define MAX_SVC_BACKENDS 16
#define CT_TIMEOUT_NS (300ULL * 1000000000ULL)
#define CFG_CHECK_SOURCE 1      /* drop packets from a pod whose source is not its own IP */

/* stats "what" */
#define ST_EGRESS_ALLOWED 0
#define ST_EGRESS_DENIED 1
#define ST_INGRESS_ALLOWED 2
#define ST_INGRESS_DENIED 3
#define ST_REPLY 4
#define ST_SPOOFED 5
#define ST_IPV6_DROPPED 6

struct cfg {
    __u32 gen;
    __u32 flags;
};

struct pod_key {
    __u32 gen;
    __u32 ifindex;              /* the pod's host-side veth */
};

struct pod_info {
    __be32 ip;
    __u8 isolated_ingress;
    __u8 isolated_egress;
    __u16 pad;
};

struct rule_key {
    __u32 prefixlen;            /* 96 + peer prefix length: gen, dir and pod_ip always match fully */
    __u32 gen;
    __u32 dir;
    __be32 pod_ip;
    __be32 peer_ip;
};

struct port_range {
    __u8 proto;
    __u8 pad;
    __u16 lo;                   /* host byte order */
    __u16 hi;
};

struct portset {
    __u8 any;                   /* a rule without ports: every protocol and port */
    __u8 n;
    __u16 pad;
    struct port_range r[MAX_RANGES];
};

struct flow_key {
    __be32 src;
    __be32 dst;
    __be16 sport;
    __be16 dport;
    __u8 proto;
    __u8 side;
    __u16 pad;
};

struct ct_val {
    __u64 last_seen_ns;
    __u64 packets;
};

struct svc_key {
    __be32 vip;
    __be16 port;
    __u8 proto;
    __u8 pad;
};

struct svc_backend {
    __be32 addr;
    __be16 port;
    __u16 pad;
};

struct svc_val {
    __u32 n;
    struct svc_backend b[MAX_SVC_BACKENDS];
};

struct stat_key {
    __u32 ifindex;
    __u32 what;
};

BPF_ARRAY(config, struct cfg, 1);
BPF_HASH(pods, struct pod_key, struct pod_info, 2048);
BPF_LPM_TRIE(rules, struct rule_key, struct portset, 65536);
BPF_TABLE("lru_hash", struct flow_key, struct ct_val, conntrack, 65536);
BPF_TABLE("lru_hash", struct flow_key, __u64, denied, 4096);
BPF_PERCPU_HASH(stats, struct stat_key, __u64, 4096);
BPF_HASH(services, struct svc_key, struct svc_val, 256);

struct pkt {
    __be32 src, dst;
    __be16 sport, dport;        /* ICMP echo: both hold the identifier */
    __u8 proto;
    __u8 has_port;
};

static __always_inline void count(__u32 ifindex, __u32 what)
{
    struct stat_key k = {.ifindex = ifindex, .what = what};
    __u64 *n = stats.lookup(&k);
    if (n) {
        *n += 1;                    /* per-CPU slot: no atomic needed */
    } else {
        __u64 one = 1;
        stats.update(&k, &one);
    }
}

/* 0: not IPv4 (verdict already in *verdict), 1: parsed into *p */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p, int *l3)
{
    struct pl_cursor c = {.pos = (void *)(long)skb->data, .end = (void *)(long)skb->data_end};
    struct ethhdr *eth;
    struct iphdr *ip;
    int proto = parse_ethhdr(&c, &eth, 0);
    *l3 = proto;
    if (proto != bpf_htons(ETH_P_IP))
        return 0;
    int l4 = parse_iphdr(&c, &ip);
    if (l4 < 0)
        return 0;
    p->src = ip->saddr;
    p->dst = ip->daddr;
    p->proto = l4;
    p->sport = p->dport = 0;
    p->has_port = 0;
    if (pl_ipv4_is_later_fragment(ip))
        return 1;
    if (l4 == IPPROTO_TCP || l4 == IPPROTO_UDP || l4 == IPPROTO_SCTP) {
        __be16 *ports = c.pos;          /* the first 4 bytes of TCP, UDP and SCTP are the ports */
        if ((void *)(ports + 2) > c.end)
            return 1;
        p->sport = ports[0];
        p->dport = ports[1];
        p->has_port = 1;
    } else if (l4 == IPPROTO_ICMP) {
        struct icmphdr *icmp = c.pos;
        if ((void *)(icmp + 1) > c.end)
            return 1;
        if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY)
            p->sport = p->dport = icmp->un.echo.id;
    }
    return 1;
}

static __always_inline int ipv6_is_nd(struct __sk_buff *skb)
{
    struct pl_cursor c = {.pos = (void *)(long)skb->data, .end = (void *)(long)skb->data_end};
    struct ethhdr *eth;
    struct ipv6hdr *ip6;
    if (parse_ethhdr(&c, &eth, 0) != bpf_htons(ETH_P_IPV6))
        return 0;
    if (parse_ip6hdr(&c, &ip6, 0) != IPPROTO_ICMPV6)
        return 0;
    struct icmp6hdr *icmp6 = c.pos;
    if ((void *)(icmp6 + 1) > c.end)
        return 0;
    return icmp6->icmp6_type >= 133 && icmp6->icmp6_type <= 137;   /* RS, RA, NS, NA, redirect */
}

/* --8<-- [start:policy] */
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
/* --8<-- [end:policy] */

/* --8<-- [start:conntrack] */
static __always_inline int ct_fresh(struct flow_key *k)
{
    struct ct_val *v = conntrack.lookup(k);
    if (!v)
        return 0;
    __u64 now = bpf_ktime_get_ns();
    if (now - v->last_seen_ns > CT_TIMEOUT_NS)
        return 0;
    v->last_seen_ns = now;
    __sync_fetch_and_add(&v->packets, 1);
    return 1;
}

static __always_inline void ct_record(struct pkt *p, __u8 side)
{
    struct flow_key k = {.src = p->src, .dst = p->dst, .sport = p->sport, .dport = p->dport,
                         .proto = p->proto, .side = side};
    struct ct_val *v = conntrack.lookup(&k);
    __u64 now = bpf_ktime_get_ns();
    if (v) {
        v->last_seen_ns = now;
        __sync_fetch_and_add(&v->packets, 1);
        return;
    }
    struct ct_val fresh = {.last_seen_ns = now, .packets = 1};
    conntrack.update(&k, &fresh);
}
/* --8<-- [end:conntrack] */

/* A packet from a Service's ClusterIP:port (the LB translated a backend's address back to it):
 * the reply on a connection that conntrack approved through one of the Service's backends?
 *   SIDE_INGRESS, at a backend pod's egress: this pod is that backend, and the client (p->dst)
 *                 was allowed in to it;
 *   SIDE_EGRESS,  at a client pod's ingress: this pod opened the connection to a backend. */
static __always_inline int svc_reply(struct pod_info *pod, struct pkt *p, __u8 side)
{
    struct svc_key sk = {.vip = p->src, .port = p->sport, .proto = p->proto};
    struct svc_val *svc = services.lookup(&sk);
    if (!svc)
        return 0;
    for (int i = 0; i < MAX_SVC_BACKENDS; i++) {
        if (i >= svc->n)
            break;
        struct flow_key k = {.src = pod->ip, .dst = svc->b[i].addr, .sport = p->dport, .dport = svc->b[i].port,
                             .proto = p->proto, .side = side};
        if (side == SIDE_INGRESS) {
            if (svc->b[i].addr != pod->ip)
                continue;
            k.src = p->dst;
            k.dst = pod->ip;
        }
        if (ct_fresh(&k))
            return 1;
    }
    return 0;
}

static __always_inline void log_denied(struct pkt *p, __u8 dir)
{
    struct flow_key k = {.src = p->src, .dst = p->dst, .sport = p->sport, .dport = p->dport,
                         .proto = p->proto, .side = dir};
    __u64 *n = denied.lookup(&k);
    if (n) {
        __sync_fetch_and_add(n, 1);
    } else {
        __u64 one = 1;
        denied.update(&k, &one);
    }
}

/* Both hooks start alike: the active rule generation, and the pod behind this veth under it
 * (NULL: not a pod we police, and the packet passes). */
static __always_inline struct pod_info *policed_pod(struct __sk_buff *skb, struct cfg **cfg)
{
    __u32 zero = 0;
    *cfg = config.lookup(&zero);
    if (!*cfg)
        return NULL;
    struct pod_key pk = {.gen = (*cfg)->gen, .ifindex = skb->ifindex};
    return pods.lookup(&pk);
}

/* A packet parse() did not take (not IPv4): IPv6, which the policy does not model, is dropped
 * for a pod isolated in this direction, except neighbour discovery; ARP and friends pass. */
static __always_inline int unparsed_verdict(struct __sk_buff *skb, int l3, __u8 isolated)
{
    if (l3 == bpf_htons(ETH_P_IPV6) && isolated && !ipv6_is_nd(skb)) {
        count(skb->ifindex, ST_IPV6_DROPPED);
        return TC_ACT_SHOT;
    }
    return TC_ACT_OK;
}

/* A new flow in direction `dir` (not a reply): a pod isolated in that direction needs a rule that
 * allows the peer, or the packet is counted, logged and dropped; an allowed flow is recorded so
 * that its replies pass as replies. */
static __always_inline int new_flow_verdict(struct __sk_buff *skb, struct cfg *cfg, struct pod_info *pod,
                                            struct pkt *p, __u8 dir)
{
    int egress = dir == DIR_EGRESS;
    __u8 isolated = egress ? pod->isolated_egress : pod->isolated_ingress;
    if (isolated && !allowed_by_rules(cfg->gen, dir, pod->ip, egress ? p->dst : p->src, p)) {
        count(skb->ifindex, egress ? ST_EGRESS_DENIED : ST_INGRESS_DENIED);
        log_denied(p, dir);
        return TC_ACT_SHOT;
    }
    ct_record(p, egress ? SIDE_EGRESS : SIDE_INGRESS);
    count(skb->ifindex, egress ? ST_EGRESS_ALLOWED : ST_INGRESS_ALLOWED);
    return TC_ACT_OK;
}

/* The pod's EGRESS: packets it sends, seen as they enter the node from its veth. */
int netpol_from_pod(struct __sk_buff *skb)
{
    struct cfg *cfg;
    struct pod_info *pod = policed_pod(skb, &cfg);
    if (!pod)
        return TC_ACT_OK;                       /* not a pod we police */
    struct pkt p = {};
    int l3 = 0;
    if (!parse(skb, &p, &l3))
        return unparsed_verdict(skb, l3, pod->isolated_egress);
    if (p.src != pod->ip) {
        if (svc_reply(pod, &p, SIDE_INGRESS)) {   /* source rewritten to the ClusterIP by the LB */
            count(skb->ifindex, ST_REPLY);
            return TC_ACT_OK;
        }
        if (cfg->flags & CFG_CHECK_SOURCE) {
            count(skb->ifindex, ST_SPOOFED);
            return TC_ACT_SHOT;
        }
    }
    /* a reply on a connection this pod accepted? */
    struct flow_key rev = {.src = p.dst, .dst = p.src, .sport = p.dport, .dport = p.sport,
                           .proto = p.proto, .side = SIDE_INGRESS};
    if (ct_fresh(&rev)) {
        count(skb->ifindex, ST_REPLY);
        return TC_ACT_OK;
    }
    return new_flow_verdict(skb, cfg, pod, &p, DIR_EGRESS);
}

/* The pod's INGRESS: packets about to be delivered to it through its veth. */
int netpol_to_pod(struct __sk_buff *skb)
{
    struct cfg *cfg;
    struct pod_info *pod = policed_pod(skb, &cfg);
    if (!pod)
        return TC_ACT_OK;
    struct pkt p = {};
    int l3 = 0;
    if (!parse(skb, &p, &l3))
        return unparsed_verdict(skb, l3, pod->isolated_ingress);
    if (p.dst != pod->ip)
        return TC_ACT_OK;                       /* flooded by the bridge, not for this pod */
    /* a reply on a connection this pod opened? */
    struct flow_key rev = {.src = p.dst, .dst = p.src, .sport = p.dport, .dport = p.sport,
                           .proto = p.proto, .side = SIDE_EGRESS};
    if (ct_fresh(&rev) || svc_reply(pod, &p, SIDE_EGRESS)) {
        count(skb->ifindex, ST_REPLY);
        return TC_ACT_OK;
    }
    return new_flow_verdict(skb, cfg, pod, &p, DIR_INGRESS);
}
