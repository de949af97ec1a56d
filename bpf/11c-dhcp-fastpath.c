/* 11c-dhcp-fastpath.c — answer DHCP for known subscribers in XDP (module 11c).
 *
 * A broadband gateway sees the same DHCP exchange from every subscriber, again
 * and again: a router rebooting, a lease renewing every half lease time. For a
 * MAC whose lease the slow path (packetlab.tools.dhcp, in userspace) has already
 * bound, the answer is known in advance, so this program writes it into the
 * request's own buffer and sends it back out of the interface it came in on
 * (XDP_TX):
 *
 *   DISCOVER from a cached MAC                  -> OFFER of the cached address
 *   REQUEST  from a cached MAC for that address -> ACK  (selecting, init-reboot,
 *            renewing or rebinding, RFC 2131 4.3.2)
 *
 * Everything else goes to the kernel untouched (XDP_PASS), where the slow path's
 * socket picks it up: unknown MACs, a REQUEST for another address or another
 * server (the slow path NAKs or forgets its offer), RELEASE, DECLINE, INFORM,
 * relayed requests (giaddr set), option overload, IPv4 options, fragments, a
 * frame whose chaddr is not its Ethernet source, and anything malformed.
 *
 * Parsing is bounds-checked throughout: Ethernet with at most one 802.1Q tag
 * (the tag is kept, so a tagged request gets a tagged reply), IPv4 without
 * options, UDP 68 -> 67 with lengths that agree with each other and with the
 * frame, the fixed BOOTP header, the magic cookie, then at most DH_MAX_OPTIONS
 * options, each of whose length must fit before the end of the UDP payload.
 *
 * The reply is the 300-byte BOOTP message RFC 1542 asks for (the frame is
 * grown or shrunk with bpf_xdp_adjust_tail), with the options in this order:
 * 53 message type, 54 server identifier, 51 lease time, 1 subnet mask,
 * 3 router, 6 DNS servers, 255 end. The slow path writes the same bytes
 * (tools/dhcp/wire.py), so the tests compare the two replies byte for byte.
 * Addressing follows RFC 2131 4.1: ciaddr set -> unicast to ciaddr; broadcast
 * bit set -> 255.255.255.255 and ff:ff:ff:ff:ff:ff; otherwise unicast to yiaddr
 * at chaddr. The IPv4 checksum is computed from scratch (pl_ipv4_csum), the UDP
 * checksum over pseudo-header, header and payload with bpf_csum_diff().
 *
 * Rate limiting, before any lookup: a token bucket per (MAC, VLAN) for every
 * DHCP frame, and one shared bucket for the frames that would go to the slow
 * path (a flood of random MACs cannot starve the daemon). An empty bucket drops.
 * A rate of 0 in `config` switches a bucket off.
 *
 * Optionally, a data rate limit per subscriber: every frame that is not a client's DHCP
 * request (nor ARP, which a subscriber needs to reach its gateway at all) takes its length
 * in bytes from the (MAC, VLAN)'s byte bucket in `data_buckets`; a frame the bucket cannot
 * pay for is dropped (XDP_DROP) and counted with its bytes. `data_rate` 0 (the default)
 * leaves data frames alone and uncounted.
 *
 * Consistency with the lease store: a lease carries its expiry in CLOCK_BOOTTIME
 * nanoseconds; an expired entry is never answered from (XDP_PASS). An ACK here
 * renews the lease, so the program moves `expires_ns` forward and the slow path
 * reads it back before it expires a lease in its store.
 */
#include "include/parse.h"
#include "include/csum.h"
#include "include/bounds.h"

#define DH_MAX_OPTIONS 48          /* options looked at in a request (pads count) */
#define DH_BOOTP_LEN 300           /* the reply's BOOTP message (RFC 1542 minimum) */
#define DH_FIXED_LEN 236           /* op .. file */
#define DH_OPT_OFF (DH_FIXED_LEN + 4)   /* options start after the magic cookie */
#define DH_MAGIC 0x63825363
#define DH_MAX_DNS 2
#define DH_OPT_COPY 512            /* option bytes copied out of the frame at most */
#define DH_OPT_MASK 511
#define NS_PER_SEC 1000000000ULL

enum { DHCPDISCOVER = 1, DHCPOFFER = 2, DHCPREQUEST = 3, DHCPDECLINE = 4, DHCPACK = 5,
       DHCPNAK = 6, DHCPRELEASE = 7, DHCPINFORM = 8 };

struct mac_key {
    __u8 mac[6];
    __u16 vlan;                    /* 802.1Q VLAN id, 0 when untagged */
};

struct lease {
    __be32 addr;                   /* yiaddr */
    __u32 pool;                    /* index into `pools` */
    __u64 expires_ns;              /* CLOCK_BOOTTIME; moved on by every fast-path ACK */
};

struct pool {
    __be32 server_id;              /* our address: option 54 and the reply's IP source */
    __be32 mask;
    __be32 router;
    __be32 dns[DH_MAX_DNS];        /* 0 = unused */
    __u32 lease_time;              /* seconds, host order */
    __u8 server_mac[6];            /* the reply's Ethernet source */
    __u16 pad;
};

struct bucket {
    __u64 last_ns;
    __u64 tokens;                  /* in 1e-9 tokens, so refills need no division */
};

struct dh_config {
    __u32 mac_rate;                /* DHCP frames per second per MAC (0: no limit) */
    __u32 mac_burst;
    __u32 slow_rate;               /* frames per second to the slow path, all MACs (0: no limit) */
    __u32 slow_burst;
    __u32 data_rate;               /* bytes per second per subscriber MAC, non-DHCP frames (0: no limit) */
    __u32 data_burst;              /* bytes (0: one second's worth) */
};

enum dh_stat {
    ST_DHCP, ST_OFFER, ST_ACK, ST_PASS_UNKNOWN, ST_PASS_EXPIRED, ST_PASS_TYPE, ST_PASS_OTHER_ADDR,
    ST_PASS_RELAY, ST_PASS_MALFORMED, ST_PASS_UNSUPPORTED, ST_DROP_MAC_RATE, ST_DROP_SLOW_RATE,
    ST_PASS_RESIZE, ST_DATA, ST_DATA_BYTES, ST_DROP_DATA_RATE, ST_DROP_DATA_BYTES, ST_MAX
};

BPF_HASH(leases, struct mac_key, struct lease, 65536);
BPF_ARRAY(pools, struct pool, 64);
BPF_ARRAY(config, struct dh_config, 1);
BPF_TABLE("lru_hash", struct mac_key, struct bucket, buckets, 65536);
BPF_TABLE("lru_hash", struct mac_key, struct bucket, data_buckets, 65536);
BPF_PERCPU_ARRAY(stats, __u64, ST_MAX);



struct bootp {
    __u8 op, htype, hlen, hops;
    __be32 xid;
    __be16 secs, flags;
    __be32 ciaddr, yiaddr, siaddr, giaddr;
    __u8 chaddr[16];
    __u8 sname[64];
    __u8 file[128];
    __be32 cookie;
};

static __always_inline void count(__u32 what)
{
    __u64 *n = stats.lookup(&what);
    if (n)
        *n += 1;
}

/* One token from `key`'s bucket (rate/s, burst deep); 0 when empty. Races between CPUs can
 * let a frame or two more through — a limiter for floods, not an accountant. */
/* --8<-- [start:take-token] */
static __always_inline int take_token(struct mac_key *key, __u32 rate, __u32 burst)
{
    if (rate == 0)
        return 1;
    __u64 now = bpf_ktime_get_ns();
    __u64 cap = (__u64)(burst ? burst : 1) * NS_PER_SEC;
    struct bucket *b = buckets.lookup(key);
    if (!b) {
        struct bucket fresh = { .last_ns = now, .tokens = cap - NS_PER_SEC };
        buckets.update(key, &fresh);
        return 1;
    }
    __u64 elapsed = now - b->last_ns;
    if (elapsed > 60 * NS_PER_SEC)
        elapsed = 60 * NS_PER_SEC;
    __u64 tokens = b->tokens + elapsed * rate;
    if (tokens > cap)
        tokens = cap;
    b->last_ns = now;
    if (tokens < NS_PER_SEC) {
        b->tokens = tokens;
        return 0;
    }
    b->tokens = tokens - NS_PER_SEC;
    return 1;
}
/* --8<-- [end:take-token] */

static __always_inline void count_n(__u32 what, __u64 n)
{
    __u64 *v = stats.lookup(&what);
    if (v)
        *v += n;
}

/* `bytes` from the subscriber's data bucket (rate bytes/s, burst bytes deep); 0 when it cannot pay.
 * Tokens are kept in 1e-9 bytes like the DHCP buckets; the refill is capped before it multiplies
 * so it cannot overflow at any rate (cap <= 2^32 * 1e9 < 2^63). */
static __always_inline int take_bytes(struct mac_key *key, __u32 rate, __u32 burst, __u64 bytes)
{
    __u64 now = bpf_ktime_get_ns();
    __u64 cap = (__u64)(burst ? burst : rate) * NS_PER_SEC;
    __u64 cost = bytes * NS_PER_SEC;
    struct bucket *b = data_buckets.lookup(key);
    if (!b) {
        if (cost > cap)
            return 0;
        struct bucket fresh = { .last_ns = now, .tokens = cap - cost };
        data_buckets.update(key, &fresh);
        return 1;
    }
    __u64 elapsed = now - b->last_ns;
    __u64 full = cap / rate + 1;                /* ns after which any bucket is full again */
    if (elapsed > full)
        elapsed = full;
    __u64 tokens = b->tokens + elapsed * rate;
    if (tokens > cap)
        tokens = cap;
    b->last_ns = now;
    if (tokens < cost) {
        b->tokens = tokens;
        return 0;
    }
    b->tokens = tokens - cost;
    return 1;
}

/* A frame that is not a client's DHCP request: the subscriber's data rate limit, if one is set. */
static __always_inline int data_frame(struct xdp_md *ctx, __u16 vlan)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    __u32 zero = 0;
    struct dh_config *cfg = config.lookup(&zero);
    if (!cfg || !cfg->data_rate || (void *)(eth + 1) > end)
        return XDP_PASS;
    if (eth->h_proto == bpf_htons(ETH_P_ARP))
        return XDP_PASS;                       /* ARP: the subscriber must reach its gateway */
    __u64 len = end - data;
    struct mac_key key = {};
    __builtin_memcpy(key.mac, eth->h_source, ETH_ALEN);
    key.vlan = vlan;
    count(ST_DATA);
    count_n(ST_DATA_BYTES, len);
    if (!take_bytes(&key, cfg->data_rate, cfg->data_burst, len)) {
        count(ST_DROP_DATA_RATE);
        count_n(ST_DROP_DATA_BYTES, len);
        return XDP_DROP;
    }
    return XDP_PASS;
}

static __always_inline int same_mac(const __u8 *a, const __u8 *b)
{
    int diff = 0;
#pragma unroll
    for (int i = 0; i < ETH_ALEN; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

/* What the request asks, from its options. */
struct dh_req {
    __u8 type;
    __u8 has_server_id, has_requested;
    __be32 server_id;
    __be32 requested;
};

struct opt_buf {
    __u8 b[DH_OPT_COPY + 8];       /* + 8: an option read at the last offset stays inside */
    __u32 off;
    struct dh_req req;
};
BPF_PERCPU_ARRAY(scratch, struct opt_buf, 1);

static __always_inline __be32 read_be32(__u8 *p)
{
    return (__be32)((__u32)p[0] | (__u32)p[1] << 8 | (__u32)p[2] << 16 | (__u32)p[3] << 24);
}

/* Walk the `len` option bytes copied into `ob->b`; what they ask lands in `ob->req`.
 * 0 on success, -1 malformed, -2 present but not for the fast path (option overload).
 *
 * Why the copy, and why the walk keeps its state in the map value: walked in packet memory
 * with the offset in a register, every option's unknown length gives the next iteration a
 * state of its own, and the verifier explores each combination (over a million instructions
 * for 48 options). Read back from a map value, the offset is just some number (masked into
 * the buffer for every access), so the states of all paths through one iteration are the
 * same and the verifier prunes them: the loop verifies in a few thousand steps. */
static __always_inline int parse_options(struct opt_buf *ob, __u32 len)
{
    ob->off = 0;
    __builtin_memset(&ob->req, 0, sizeof(ob->req));
    for (int i = 0; i < DH_MAX_OPTIONS; i++) {
        __u32 off = *(volatile __u32 *)&ob->off;     /* re-read: no range carried over */
        if (off >= len || off > DH_OPT_COPY)
            return -1;                         /* options end without option 255 */
        __u8 *p = ob->b + (off & DH_OPT_MASK);
        __u8 code = p[0];
        if (code == 255)
            return *(volatile __u8 *)&ob->req.type ? 0 : -1;
        if (code == 0) {
            ob->off = off + 1;
            continue;
        }
        __u32 olen = p[1];
        if (off + 2 + olen > len)
            return -1;                         /* length runs past the UDP payload */
        if (code == 53) {
            if (olen != 1 || *(volatile __u8 *)&ob->req.type)
                return -1;
            ob->req.type = p[2];
        } else if (code == 50 || code == 54) {
            if (olen != 4)
                return -1;
            if (code == 50) {
                ob->req.has_requested = 1;
                ob->req.requested = read_be32(p + 2);
            } else {
                ob->req.has_server_id = 1;
                ob->req.server_id = read_be32(p + 2);
            }
        } else if (code == 52) {
            return -2;                         /* overload: options in sname/file too */
        }
        ob->off = off + 2 + olen;
    }
    return -1;                                 /* more options than we look at */
}

static __always_inline __u8 *put_opt4(__u8 *o, __u8 code, __be32 v)
{
    o[0] = code;
    o[1] = 4;
    __builtin_memcpy(o + 2, &v, 4);
    return o + 6;
}

/* The request's Ethernet, IPv4 and UDP headers become the reply's; addressing per RFC 2131 4.1
 * (giaddr is 0: relayed requests never get here). The BOOTP message is already the reply's. */
/* --8<-- [start:reply-headers] */
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
/* --8<-- [end:reply-headers] */

/* Rewrite the (already resized) frame into the reply. `l2` is 14 or 18. */
static __always_inline int build_reply(struct xdp_md *ctx, __u32 l2, __u8 type, struct lease *lease,
                                       struct pool *pool)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    if (l2 != ETH_HLEN && l2 != ETH_HLEN + 4)
        return XDP_PASS;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + l2;
    struct udphdr *udp = (void *)(ip + 1);
    struct bootp *bp = (void *)(udp + 1);
    __u8 *opts = (__u8 *)bp + DH_OPT_OFF;
    if ((void *)(eth + 1) > end || (void *)bp + DH_BOOTP_LEN > end)
        return XDP_PASS;

    /* BOOTP (RFC 2131 table 3): xid, flags, giaddr and chaddr stay as the client sent them */
    bp->op = 2;
    bp->hops = 0;
    bp->secs = 0;
    if (type == DHCPOFFER)
        bp->ciaddr = 0;
    bp->yiaddr = lease->addr;
    bp->siaddr = 0;
    __builtin_memset(bp->chaddr + 6, 0, 10);
    __builtin_memset(bp->sname, 0, sizeof(bp->sname));
    __builtin_memset(bp->file, 0, sizeof(bp->file));
    bp->cookie = bpf_htonl(DH_MAGIC);
    __builtin_memset(opts, 0, DH_BOOTP_LEN - DH_OPT_OFF);
    __u8 *o = opts;
    o[0] = 53;
    o[1] = 1;
    o[2] = type;
    o = put_opt4(o + 3, 54, pool->server_id);
    o = put_opt4(o, 51, bpf_htonl(pool->lease_time));
    o = put_opt4(o, 1, pool->mask);
    if (pool->router)
        o = put_opt4(o, 3, pool->router);
    if (pool->dns[0]) {
        o[0] = 6;
        o[1] = pool->dns[1] ? 8 : 4;
        __builtin_memcpy(o + 2, &pool->dns[0], 4);
        if (pool->dns[1]) {
            __builtin_memcpy(o + 6, &pool->dns[1], 4);
            o += 4;
        }
        o += 6;
    }
    o[0] = 255;

    reply_headers(eth, ip, udp, bp, lease->addr, pool);
    udp->check = 0;
    /* pseudo-header words, then the UDP header and payload summed by the kernel */
    __u32 seed = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) + (ip->daddr >> 16) +
                 bpf_htons(IPPROTO_UDP) + udp->len;
    /* The helper fails only for sizes that are not multiples of 4 or over 512 bytes; these are
     * constants it accepts. Only the low 32 bits are the sum: on older kernels the upper half
     * depends on the architecture's csum_partial() (on Debian 12's 6.1 for x86 a sum with bit 31
     * set came back sign-extended, and a "sum < 0" check passed every such reply to the slow path). */
    __u32 sum = (__u32)bpf_csum_diff(NULL, 0, (__be32 *)udp, sizeof(*udp) + DH_BOOTP_LEN, seed);
    __u16 check = ~pl_csum_fold(sum);
    udp->check = check ? check : 0xffff;
    return XDP_TX;
}

int xdp_dhcp_fastpath(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct pl_cursor c = { .pos = data, .end = end };
    struct ethhdr *eth;
    struct iphdr *ip;
    struct udphdr *udp;
    __u16 vlan = 0;

    int proto = parse_ethhdr(&c, &eth, &vlan);
    if (proto < 0)
        return XDP_PASS;                       /* runt, or more VLAN tags than we look through */
    if (proto != bpf_htons(ETH_P_IP))
        return data_frame(ctx, vlan);
    __u32 l2 = c.pos - data;
    if (l2 > ETH_HLEN + 4)
        return XDP_PASS;                       /* QinQ: not ours */
    if (parse_iphdr(&c, &ip) != IPPROTO_UDP)
        return data_frame(ctx, vlan);
    if (parse_udphdr(&c, &udp) < 0 || udp->dest != bpf_htons(67) || udp->source != bpf_htons(68))
        return data_frame(ctx, vlan);          /* not a client-to-server DHCP frame */

    count(ST_DHCP);
    struct mac_key key = {};
    __builtin_memcpy(key.mac, eth->h_source, ETH_ALEN);
    key.vlan = vlan;
    __u32 zero = 0;
    struct dh_config *cfg = config.lookup(&zero);
    if (cfg && !take_token(&key, cfg->mac_rate, cfg->mac_burst)) {
        count(ST_DROP_MAC_RATE);
        return XDP_DROP;
    }

    int verdict = ST_PASS_MALFORMED;
    struct lease *lease = NULL;
    struct pool *pool = NULL;
    struct dh_req req = {};
    __u8 reply_type = 0;
    struct bootp *bp = c.pos;
    __u32 ip_len = bpf_ntohs(ip->tot_len), udp_len = bpf_ntohs(udp->len);
    if (ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff))) {
        verdict = ST_PASS_UNSUPPORTED;         /* IP options or a fragment */
        goto slow;
    }
    if (ip_len > end - (void *)ip || udp_len != ip_len - sizeof(*ip) || udp_len < sizeof(*udp) + DH_OPT_OFF + 1)
        goto slow;
    if ((void *)(bp + 1) > end)
        goto slow;
    if (bp->op != 1 || bp->htype != 1 || bp->hlen != 6 || bp->cookie != bpf_htonl(DH_MAGIC))
        goto slow;
    if (bp->giaddr) {
        verdict = ST_PASS_RELAY;
        goto slow;
    }
    if (!same_mac(bp->chaddr, eth->h_source)) {
        verdict = ST_PASS_UNSUPPORTED;         /* chaddr is not the sender: not on our fast path */
        goto slow;
    }
    __u32 opt_len = udp_len - sizeof(*udp) - DH_OPT_OFF;
    if (opt_len > DH_OPT_COPY)
        opt_len = DH_OPT_COPY;                 /* longer options: looked at up to here */
    struct opt_buf *ob = scratch.lookup(&zero);
    if (!ob)
        goto slow;
    /* opt_len is 1..512 here, but the verifier must see that on the register the helper gets:
     * clang may keep the length on the stack across the lookup, stored before the check above
     * bounded it, and Debian 12's 6.1 forgets the range of a number stored while unbounded
     * (R4 min value is negative). bounds.h explains the assembly that says it for every kernel. */
    PL_LEN_1_TO(opt_len, DH_OPT_COPY);
    if (bpf_xdp_load_bytes(ctx, (void *)(bp + 1) - data, ob->b, opt_len))
        goto slow;
    int r = parse_options(ob, opt_len);
    req = ob->req;
    if (r == -2) {
        verdict = ST_PASS_UNSUPPORTED;
        goto slow;
    }
    if (r < 0)
        goto slow;
    if (req.type != DHCPDISCOVER && req.type != DHCPREQUEST) {
        verdict = ST_PASS_TYPE;
        goto slow;
    }
    lease = leases.lookup(&key);
    if (!lease) {
        verdict = ST_PASS_UNKNOWN;
        goto slow;
    }
    __u64 now = bpf_ktime_get_boot_ns();
    if (lease->expires_ns <= now) {
        verdict = ST_PASS_EXPIRED;
        goto slow;
    }
    __u32 pool_idx = lease->pool;
    pool = pools.lookup(&pool_idx);
    if (!pool || !pool->server_id) {
        verdict = ST_PASS_UNKNOWN;
        goto slow;
    }
    /* the daddr of a unicast request must be us */
    if (ip->daddr != 0xffffffff && ip->daddr != pool->server_id) {
        verdict = ST_PASS_OTHER_ADDR;
        goto slow;
    }
    if (req.type == DHCPDISCOVER) {
        reply_type = DHCPOFFER;
    } else {
        if ((req.has_server_id && req.server_id != pool->server_id) ||
            (req.has_requested && req.requested != lease->addr) ||
            (bp->ciaddr && bp->ciaddr != lease->addr) || (!req.has_requested && !bp->ciaddr)) {
            verdict = ST_PASS_OTHER_ADDR;      /* another server's offer, or an address to NAK */
            goto slow;
        }
        reply_type = DHCPACK;
    }

    /* copy what the reply needs before the frame changes under the pointers */
    struct lease l = *lease;
    struct pool p = *pool;
    int delta = (int)(l2 + sizeof(*ip) + sizeof(*udp) + DH_BOOTP_LEN) - (int)(end - data);
    if (delta && bpf_xdp_adjust_tail(ctx, delta)) {
        count(ST_PASS_RESIZE);
        return XDP_PASS;                       /* the buffer cannot grow: the slow path answers */
    }
    int act = build_reply(ctx, l2, reply_type, &l, &p);
    if (act == XDP_TX && reply_type == DHCPACK)
        lease->expires_ns = now + (__u64)p.lease_time * NS_PER_SEC;   /* an ACK renews */
    count(act == XDP_TX ? (reply_type == DHCPOFFER ? ST_OFFER : ST_ACK) : ST_PASS_RESIZE);
    return act;

slow:
    count(verdict);
    {
        struct mac_key slow_key = { .vlan = 0xffff };   /* one shared bucket for the slow path */
        if (cfg && !take_token(&slow_key, cfg->slow_rate, cfg->slow_burst)) {
            count(ST_DROP_SLOW_RATE);
            return XDP_DROP;
        }
    }
    return XDP_PASS;
}
