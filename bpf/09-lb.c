/* 09-lb.c — packetlab's XDP L4 load balancer (module 09 milestone).
 *
 * One program, attached to every interface of the load balancer where client
 * traffic or backend replies arrive. For each IPv4 TCP/UDP packet:
 *
 *   1. dst address:port/proto is a VIP (map `vips`)  -> forward path
 *        - the connection table (`conns`, an LRU hash keyed by the 5-tuple)
 *          says which backend this flow already uses; if it has none (or its
 *          backend is gone or down, or a new TCP connection reuses the tuple),
 *          hash the 5-tuple into the VIP's Maglev table (`ring`, computed in
 *          userspace by packetlab/tools/lb/maglev.py) and remember the choice;
 *        - DSR mode: prepend an outer IPv4 header (IPIP, proto 4) addressed to
 *          the backend — the backend strips it (09-lb-decap.c) and answers the
 *          client directly from the VIP;
 *        - NAT mode: rewrite dst VIP:port -> backend:port, update the IP and
 *          L4 checksums incrementally (RFC 1624, include/csum.h; a UDP
 *          checksum of 0 stays 0, a computed 0 is sent as 0xffff) and record the reverse
 *          mapping (`nat_rev`) for the replies;
 *   2. else src/dst matches a NAT reply (`nat_rev`)   -> rewrite src
 *        backend:port -> VIP:port and send it back towards the client, to the
 *        MAC address and interface the client's packets came from;
 *   3. anything else -> XDP_PASS, untouched.
 *
 * Forwarding: the control plane resolves each backend's next hop (egress
 * interface, MACs) in the LB's namespace. Same interface -> XDP_TX; another
 * interface -> XDP_REDIRECT through the devmap `tx_ports`; next hop unknown ->
 * XDP_PASS of the rewritten packet with its original Ethernet header, so the
 * kernel's own routing forwards it (slower, always correct).
 *
 * Documented verdicts for odd packets:
 *   - not IPv4 (ARP, IPv6), VLAN-tagged, or not TCP/UDP  -> XDP_PASS
 *   - truncated Ethernet/IPv4/TCP/UDP header             -> XDP_PASS (the
 *     kernel's stack drops what it cannot parse either), counted
 *   - IPv4 options (ihl > 5)                              -> parsed and balanced
 *     like any packet (the inner header is kept as it is)
 *   - IPv4 fragments to a VIP address                     -> XDP_DROP, counted:
 *     later fragments carry no ports, so they cannot be hashed to the same
 *     backend as the first (Katran drops them too); fragments to other
 *     addresses -> XDP_PASS
 *
 * Every struct below has a ctypes twin in packetlab/tools/lb/maps.py; their sizes
 * are checked against the kernel's map key/value sizes when the maps are opened.
 */
#include <uapi/linux/bpf.h>
#include "include/parse.h"
#include "include/csum.h"

#ifndef LB_MAX_VIPS
#define LB_MAX_VIPS 16
#endif
#ifndef LB_MAX_RING
#define LB_MAX_RING 65537          /* largest Maglev table per VIP (a prime) */
#endif
#ifndef LB_MAX_BACKENDS
#define LB_MAX_BACKENDS 256
#endif
#ifndef LB_MAX_CONNS
#define LB_MAX_CONNS 65536
#endif
#define LB_MAX_IFINDEX 1024
#define LB_HASH_SEED 0x9e3779b9u   /* must match packetlab/tools/lb/maglev.py */

#define VIP_F_DSR      1
#define VIP_F_STICKY   2
#define VIP_F_ACTIVE   4           /* this vip_meta row is in use */

#define FILTER_VIP_DST 1           /* addr_filter: some VIP address falls in this bucket */
#define FILTER_BE_SRC  2           /* addr_filter: some NAT backend address falls in it */

#define BE_F_ACTIVE    1           /* configured */
#define BE_F_UP        2           /* health checks pass */
#define BE_F_NEXTHOP   4           /* ifindex/dmac/smac are valid: forward in XDP */
#define BE_F_REDIRECT  8           /* ...and XDP_REDIRECT to ifindex is allowed (SET_F_REDIRECT) */
#define BE_F_USABLE    (BE_F_ACTIVE | BE_F_UP)

#define SET_F_REDIRECT 1           /* XDP_REDIRECT between interfaces is allowed */

/* connection states (mirrored by packetlab/tools/lb/flows.py) */
#define ST_NONE        0
#define ST_SYN_SENT    1
#define ST_ESTABLISHED 2
#define ST_FIN_WAIT    3
#define ST_CLOSED      4
#define ST_UDP         5

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

enum lb_event {
    EV_PASS_NOT_IPV4 = 0,
    EV_PASS_NOT_VIP,
    EV_PASS_MALFORMED,
    EV_DROP_FRAGMENT,
    EV_DROP_NO_BACKEND,
    EV_XMIT_KERNEL,                /* forwarded by the kernel (slow path); XDP_TX/REDIRECT are */
                                   /* not counted here: the per-VIP/backend stats count them */
    EV_REPLY_NAT,
    EV_CONN_NEW,
    EV_CONN_RESELECT,
    EV_DROP_ENCAP,
    EV_MAX = 16,
};

struct lb_vip_key {
    __be32 addr;
    __be16 port;
    __u8   proto;
    __u8   pad;
};

struct lb_vip {
    __u32 index;                   /* row of `ring` and `vip_meta`, and of the `stats` matrix */
    __u32 ring_size;               /* Maglev table size (prime) */
    __u32 flags;                   /* VIP_F_* (VIP_F_ACTIVE in vip_meta) */
    __be32 addr;                   /* the VIP itself, so that a connection-table hit */
    __be16 port;                   /* can be checked against the VIP's row */
    __u8   proto;
    __u8   pad;
};

struct lb_backend {
    __be32 addr;
    __be32 saddr;                  /* our address towards it: outer source for DSR */
    __be16 port;
    __u16  flags;                  /* BE_F_* */
    __u32  ifindex;                /* egress interface towards its next hop */
    __u8   dmac[6];                /* next hop MAC */
    __u8   smac[6];                /* our MAC on ifindex */
};

/* A flow as seen on the wire: conns key (client -> VIP), nat_rev key (backend -> client). */
struct lb_flow {
    __be32 src;
    __be32 dst;
    __be16 sport;
    __be16 dport;
    __u8   proto;
    __u8   pad[3];
};

struct lb_conn {
    __u64 created_ns;              /* bpf_ktime_get_coarse_ns() when the flow was balanced */
    __u64 last_jiffies;            /* bpf_jiffies64() of the last packet: free, unlike any ns clock */
    __u64 packets;                 /* client -> backend */
    __u64 reply_packets;           /* backend -> client through the LB (NAT) */
    __u32 backend;                 /* slot in `backends` */
    __u32 vip_index;
    __u32 ifindex;                 /* where the client's packets arrive; replies leave here */
    __u8  state;                   /* ST_* */
    __u8  tcp_flags;               /* every TCP flag seen, OR-ed */
    __u8  client_mac[6];           /* L2 source of the client's frames: the way back */
    __u8  lb_mac[6];               /* our MAC on that interface */
    __u16 pad;
};

struct lb_counters {
    __u64 packets;
    __u64 bytes;
    __u64 conns;
    __u64 reply_packets;
    __u64 reply_bytes;
};

struct lb_settings {
    __u32 flags;                   /* SET_F_* */
    __u32 pad;
};

BPF_HASH(vips, struct lb_vip_key, struct lb_vip, LB_MAX_VIPS);
BPF_ARRAY(vip_meta, struct lb_vip, LB_MAX_VIPS);                 /* the same, by row */
BPF_ARRAY(addr_filter, __u32, 256);                               /* FILTER_* by lb_addr_bucket() */
BPF_HASH(vip_addrs, __be32, __u32, LB_MAX_VIPS);                  /* VIP address -> #VIPs on it */
BPF_ARRAY(ring, __u32, LB_MAX_VIPS * LB_MAX_RING);               /* Maglev tables, one row per VIP */
BPF_ARRAY(backends, struct lb_backend, LB_MAX_BACKENDS);
BPF_TABLE("lru_hash", struct lb_flow, struct lb_conn, conns, LB_MAX_CONNS);
BPF_TABLE("lru_hash", struct lb_flow, struct lb_flow, nat_rev, LB_MAX_CONNS);
BPF_PERCPU_ARRAY(stats, struct lb_counters, LB_MAX_VIPS * LB_MAX_BACKENDS);   /* [vip row][backend slot] */
BPF_PERCPU_ARRAY(events, __u64, EV_MAX);
BPF_ARRAY(settings, struct lb_settings, 1);
BPF_DEVMAP(tx_ports, LB_MAX_IFINDEX);                             /* key = ifindex */

static __always_inline void lb_event(__u32 ev)
{
    __u64 *n = events.lookup(&ev);
    if (n)
        *n += 1;
}

/* XOR of the four address bytes: a 256-bucket pre-filter, so traffic that is
 * neither to a VIP nor from a NAT backend skips every hash-map lookup. */
static __always_inline __u32 lb_addr_bucket(__be32 a)
{
    a ^= a >> 16;
    a ^= a >> 8;
    return a & 0xff;
}

/* ---- the flow hash (packetlab.tools.lb.maglev.flow_hash is the same function) ---- */
/* --8<-- [start:hash] */
static __always_inline __u32 lb_mix(__u32 h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

static __always_inline __u32 lb_flow_hash(const struct lb_flow *f)
{
    __u32 h = LB_HASH_SEED;
    h = lb_mix(h ^ bpf_ntohl(f->src));
    h = lb_mix(h ^ bpf_ntohl(f->dst));
    h = lb_mix(h ^ (((__u32)bpf_ntohs(f->sport) << 16) | bpf_ntohs(f->dport)));
    h = lb_mix(h ^ f->proto);
    return h;
}
/* --8<-- [end:hash] */

/* ---- the connection tracker's state machine (conntrack.py: next_state) ---- */
static __always_inline __u8 lb_next_state(__u8 state, __u8 proto, __u8 flags, int from_client)
{
    if (proto != IPPROTO_TCP)
        return ST_UDP;
    if (flags & TCPF_RST)
        return ST_CLOSED;
    if (flags & TCPF_FIN)
        return state == ST_CLOSED ? ST_CLOSED : ST_FIN_WAIT;
    if ((flags & TCPF_SYN) && !(flags & TCPF_ACK))
        return from_client ? ST_SYN_SENT : state;
    if (flags & TCPF_SYN)                       /* SYN-ACK from the backend */
        return state == ST_NONE ? ST_SYN_SENT : state;
    if (state == ST_NONE || (state == ST_SYN_SENT && from_client))
        return ST_ESTABLISHED;
    return state;
}

/* --8<-- [start:maglev] */
static __always_inline int lb_pick(struct lb_vip *vip, struct lb_flow *flow, __u32 *slot_out)
{
    __u32 rs = vip->ring_size;
    if (rs == 0 || rs > LB_MAX_RING || vip->index >= LB_MAX_VIPS)
        return -1;
    __u32 pos = vip->index * LB_MAX_RING + lb_flow_hash(flow) % rs;
    __u32 *slot = ring.lookup(&pos);
    if (!slot || *slot >= LB_MAX_BACKENDS)
        return -1;                                  /* LB_EMPTY: no backend */
    *slot_out = *slot;
    return 0;
}
/* --8<-- [end:maglev] */

static __always_inline void lb_count(struct lb_counters *c, __u64 bytes, int new_conn, int reply)
{
    if (!c)
        return;
    if (reply) {
        c->reply_packets += 1;
        c->reply_bytes += bytes;
    } else {
        c->packets += 1;
        c->bytes += bytes;
        c->conns += new_conn;
    }
}

/* May this packet leave by `ifindex` straight from XDP? */
static __always_inline int lb_can_xmit(struct xdp_md *ctx, __u32 ifindex)
{
    if (ifindex == ctx->ingress_ifindex)
        return 1;
    __u32 zero = 0;
    struct lb_settings *s = settings.lookup(&zero);
    return s && (s->flags & SET_F_REDIRECT) && ifindex < LB_MAX_IFINDEX;
}

/* Send the (already rewritten) frame: MACs set by the caller. */
static __always_inline int lb_xmit(struct xdp_md *ctx, __u32 ifindex)
{
    if (ifindex == ctx->ingress_ifindex)
        return XDP_TX;
    return tx_ports.redirect_map(ifindex, 0);
}

static __always_inline int lb_encap_ipip(struct xdp_md *ctx, struct lb_backend *be, __u16 inner_len,
                                          __u8 tos, __be16 df)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr saved;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return XDP_DROP;
    __builtin_memcpy(&saved, eth, sizeof(saved));
    if (bpf_xdp_adjust_head(ctx, 0 - (int)sizeof(struct iphdr))) {
        lb_event(EV_DROP_ENCAP);
        return XDP_DROP;
    }
    data = (void *)(long)ctx->data;
    end = (void *)(long)ctx->data_end;
    eth = data;
    struct iphdr *outer = (void *)(eth + 1);
    if ((void *)(outer + 1) > end)
        return XDP_DROP;
    int fast = (be->flags & BE_F_NEXTHOP) &&
               (be->ifindex == ctx->ingress_ifindex || (be->flags & BE_F_REDIRECT));
    if (fast) {
        __builtin_memcpy(eth->h_dest, be->dmac, ETH_ALEN);
        __builtin_memcpy(eth->h_source, be->smac, ETH_ALEN);
    } else {
        __builtin_memcpy(eth->h_dest, saved.h_dest, ETH_ALEN);    /* still addressed to us: */
        __builtin_memcpy(eth->h_source, saved.h_source, ETH_ALEN); /* the kernel routes it */
    }
    /* --8<-- [start:encap] */
    eth->h_proto = bpf_htons(ETH_P_IP);
    outer->version = 4;
    outer->ihl = 5;
    outer->tos = tos;
    outer->tot_len = bpf_htons(inner_len + sizeof(struct iphdr));
    outer->id = 0;
    outer->frag_off = df;
    outer->ttl = 64;
    outer->protocol = IPPROTO_IPIP;
    outer->check = 0;
    outer->saddr = be->saddr;
    outer->daddr = be->addr;
    outer->check = pl_ipv4_csum(outer);
    /* --8<-- [end:encap] */
    if (!fast) {
        lb_event(EV_XMIT_KERNEL);
        return XDP_PASS;
    }
    return lb_xmit(ctx, be->ifindex);
}

/* A reply from a NAT backend: backend:port -> VIP:port, back to the client's MAC and interface. */
static __always_inline int lb_reply(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *ip, __u8 l4,
                                    __be16 *sport_p, __be16 *dport_p, __sum16 *l4check, int is_udp,
                                    __u8 tflags, __u64 pkt_len)
{
    struct lb_flow rk = { .src = ip->saddr, .dst = ip->daddr, .sport = *sport_p, .dport = *dport_p,
                          .proto = l4 };
    struct lb_flow *fwd = nat_rev.lookup(&rk);
    if (!fwd) {
        lb_event(EV_PASS_NOT_VIP);
        return XDP_PASS;
    }
    struct lb_flow fk = *fwd;
    struct lb_conn *conn = conns.lookup(&fk);
    if (!conn) {
        lb_event(EV_PASS_NOT_VIP);                  /* connection expired: let the kernel have it */
        return XDP_PASS;
    }
    __u32 bslot = conn->backend;
    struct lb_backend *be = backends.lookup(&bslot);
    if (!be || be->addr != ip->saddr || be->port != *sport_p) {
        lb_event(EV_PASS_NOT_VIP);                  /* a stale mapping of a re-balanced flow */
        return XDP_PASS;
    }
    pl_csum_replace4(&ip->check, ip->saddr, fk.dst);
    if (is_udp) {
        pl_udp_csum_replace4(l4check, ip->saddr, fk.dst);
        pl_udp_csum_replace2(l4check, *sport_p, fk.dport);
    } else {
        pl_csum_replace4(l4check, ip->saddr, fk.dst);
        pl_csum_replace2(l4check, *sport_p, fk.dport);
    }
    ip->saddr = fk.dst;
    *sport_p = fk.dport;
    conn->last_jiffies = bpf_jiffies64();
    conn->reply_packets += 1;
    conn->tcp_flags |= tflags;
    conn->state = lb_next_state(conn->state, l4, tflags, 0);
    __u32 cell = conn->vip_index * LB_MAX_BACKENDS + bslot;
    lb_count(stats.lookup(&cell), pkt_len, 0, 1);
    lb_event(EV_REPLY_NAT);
    if (!lb_can_xmit(ctx, conn->ifindex)) {
        lb_event(EV_XMIT_KERNEL);
        return XDP_PASS;
    }
    __builtin_memcpy(eth->h_dest, conn->client_mac, ETH_ALEN);
    __builtin_memcpy(eth->h_source, conn->lb_mac, ETH_ALEN);
    return lb_xmit(ctx, conn->ifindex);
}

int lb_xdp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u64 pkt_len = data_end - data;
    struct pl_cursor c = { .pos = data, .end = data_end };
    struct ethhdr *eth;
    struct iphdr *ip;
    int proto = parse_ethhdr(&c, &eth, NULL);
    if (proto < 0) {
        lb_event(EV_PASS_MALFORMED);
        return XDP_PASS;
    }
    if (proto != bpf_htons(ETH_P_IP) || c.pos != (void *)(eth + 1)) {
        lb_event(EV_PASS_NOT_IPV4);                 /* IPv6, ARP, VLAN-tagged: not ours */
        return XDP_PASS;
    }
    int l4 = parse_iphdr(&c, &ip);
    if (l4 < 0) {
        lb_event(EV_PASS_MALFORMED);
        return XDP_PASS;
    }
    if (ip->frag_off & bpf_htons(0x3fff)) {         /* MF set or offset != 0 */
        __be32 daddr = ip->daddr;
        if (vip_addrs.lookup(&daddr)) {
            lb_event(EV_DROP_FRAGMENT);
            return XDP_DROP;
        }
        lb_event(EV_PASS_NOT_VIP);
        return XDP_PASS;
    }
    if (l4 != IPPROTO_TCP && l4 != IPPROTO_UDP) {
        lb_event(EV_PASS_NOT_VIP);
        return XDP_PASS;
    }
    struct tcphdr *tcp = NULL;
    struct udphdr *udp = NULL;
    __sum16 *l4check;
    __be16 *sport_p, *dport_p;
    __u8 tflags = 0;
    if (l4 == IPPROTO_TCP) {
        if (parse_tcphdr(&c, &tcp) < 0) {
            lb_event(EV_PASS_MALFORMED);
            return XDP_PASS;
        }
        sport_p = &tcp->source;
        dport_p = &tcp->dest;
        l4check = &tcp->check;
        tflags = ((__u8 *)tcp)[13];
    } else {
        if (parse_udphdr(&c, &udp) < 0) {
            lb_event(EV_PASS_MALFORMED);
            return XDP_PASS;
        }
        sport_p = &udp->source;
        dport_p = &udp->dest;
        l4check = &udp->check;
    }
    __u32 dbucket = lb_addr_bucket(ip->daddr), sbucket = lb_addr_bucket(ip->saddr);
    __u32 *fdst = addr_filter.lookup(&dbucket);
    if (!fdst || !(*fdst & FILTER_VIP_DST)) {
        __u32 *fsrc = addr_filter.lookup(&sbucket);
        if (!fsrc || !(*fsrc & FILTER_BE_SRC)) {
            lb_event(EV_PASS_NOT_VIP);              /* neither to a VIP nor from a NAT backend */
            return XDP_PASS;
        }
        return lb_reply(ctx, eth, ip, l4, sport_p, dport_p, l4check, udp != NULL, tflags, pkt_len);
    }
    /* --8<-- [start:established] */
    /* ---- established flow? The connection table first: a hit needs no VIP hash lookup ---- */
    struct lb_flow key = { .src = ip->saddr, .dst = ip->daddr, .sport = *sport_p, .dport = *dport_p,
                           .proto = l4 };
    struct lb_conn *conn = conns.lookup(&key);
    struct lb_vip *vip = NULL;
    struct lb_backend *be = NULL;
    __u32 slot = 0;
    int new_conn = 0;
    if (conn) {
        __u32 row = conn->vip_index;
        vip = vip_meta.lookup(&row);
        if (!vip || !(vip->flags & VIP_F_ACTIVE) || vip->addr != key.dst || vip->port != key.dport ||
            vip->proto != l4)
            vip = NULL;                             /* the VIP was removed or its row reused */
    }
    if (!vip) {
        struct lb_vip_key vk = { .addr = ip->daddr, .port = *dport_p, .proto = l4 };
        vip = vips.lookup(&vk);
        if (!vip) {
            __u32 *fsrc = addr_filter.lookup(&sbucket);
            if (fsrc && (*fsrc & FILTER_BE_SRC))
                return lb_reply(ctx, eth, ip, l4, sport_p, dport_p, l4check, udp != NULL, tflags, pkt_len);
            lb_event(EV_PASS_NOT_VIP);
            return XDP_PASS;
        }
        if (conn && conn->vip_index != vip->index)
            conn = NULL;                            /* a stale entry of a removed VIP: start over */
    }
    /* --8<-- [end:established] */
    if (conn) {
        slot = conn->backend;
        be = backends.lookup(&slot);
        int reselect = !be || (be->flags & BE_F_USABLE) != BE_F_USABLE || !(vip->flags & VIP_F_STICKY);
        if (tcp && (tflags & TCPF_SYN) && !(tflags & TCPF_ACK) &&
            (conn->state == ST_FIN_WAIT || conn->state == ST_CLOSED)) {
            reselect = 1;                           /* a new connection reusing the 4-tuple */
            conn->state = ST_NONE;
            conn->tcp_flags = 0;
            conn->created_ns = bpf_ktime_get_coarse_ns();
            new_conn = 1;
        }
        if (reselect) {
            __u32 pick;
            if (lb_pick(vip, &key, &pick) < 0) {
                lb_event(EV_DROP_NO_BACKEND);
                return XDP_DROP;
            }
            if (pick != slot) {
                new_conn = 1;
                lb_event(EV_CONN_RESELECT);
            }
            slot = pick;
            be = backends.lookup(&slot);
            conn->backend = slot;
        }
    } else {
        if (lb_pick(vip, &key, &slot) < 0) {
            lb_event(EV_DROP_NO_BACKEND);
            return XDP_DROP;
        }
        be = backends.lookup(&slot);
        struct lb_conn fresh = {};
        fresh.created_ns = bpf_ktime_get_coarse_ns();
        fresh.backend = slot;
        fresh.vip_index = vip->index;
        fresh.ifindex = ctx->ingress_ifindex;
        __builtin_memcpy(fresh.client_mac, eth->h_source, ETH_ALEN);
        __builtin_memcpy(fresh.lb_mac, eth->h_dest, ETH_ALEN);
        conns.update(&key, &fresh);
        conn = conns.lookup(&key);
        new_conn = 1;
        lb_event(EV_CONN_NEW);
    }
    if (!be || !conn || !(be->flags & BE_F_ACTIVE)) {
        lb_event(EV_DROP_NO_BACKEND);
        return XDP_DROP;
    }
    conn->last_jiffies = bpf_jiffies64();
    conn->packets += 1;
    conn->tcp_flags |= tflags;
    conn->state = lb_next_state(conn->state, l4, tflags, 1);
    if (conn->ifindex != ctx->ingress_ifindex) {    /* the client's path moved: follow it */
        conn->ifindex = ctx->ingress_ifindex;
        __builtin_memcpy(conn->client_mac, eth->h_source, ETH_ALEN);
        __builtin_memcpy(conn->lb_mac, eth->h_dest, ETH_ALEN);
    }
    __u32 cell = vip->index * LB_MAX_BACKENDS + slot;
    lb_count(stats.lookup(&cell), pkt_len, new_conn, 0);

    if (vip->flags & VIP_F_DSR) {
        __u16 inner_len = bpf_ntohs(ip->tot_len);
        __u8 tos = ip->tos;
        __be16 df = ip->frag_off & bpf_htons(0x4000);
        return lb_encap_ipip(ctx, be, inner_len, tos, df);
    }

    /* --8<-- [start:nat] */
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
    /* --8<-- [end:nat] */
}
