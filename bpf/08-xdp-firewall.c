/* 08-xdp-firewall.c — the module 08 milestone: a rule-based XDP firewall.
 *
 * Classification without a rule scan (the "aggregated bit vector" scheme):
 * every rule owns one bit. For each of five dimensions the control plane
 * (packetlab/tools/firewall/compiler.py) precomputes which rules can match a given
 * value, and the packet's value is mapped to such a *class* in one lookup:
 *
 *   source address       LPM trie  fw_addr (dimension 0)   -> class
 *   destination address  LPM trie  fw_addr (dimension 1)   -> class
 *   destination port     array     fw_port (dimension 0)   -> class
 *   source port          array     fw_port (dimension 1)   -> class
 *   protocol + TCP flags array     fw_l4                   -> class
 *
 * A class holds a bitmap over all rules. The packet's verdict is the lowest
 * rule bit set in all five bitmaps (rule order = priority). Bitmaps are
 * stored compressed: a 256-bit summary says which 64-bit words are non-zero,
 * and only those words live in fw_pool. Scanning the five 4-word summaries
 * costs the same for 1 rule or 16,384, so the per-packet cost does not grow
 * with the number of rules the way an iptables chain does.
 *
 * Atomic updates: every per-rule-set map holds two complete rule sets
 * ("slots" 0 and 1). fw_active names the slot packets use. The control plane
 * writes the new rule set into the idle slot, flips fw_active with one map
 * update, then waits for an RCU grace period before it may touch the old
 * slot again. A packet reads the slot number once, so it sees the old or the
 * new rule set, never a mixture.
 *
 * Struct layouts here are mirrored by packetlab/tools/firewall/layout.py and checked
 * against the maps' key/value sizes when the control plane opens the maps.
 */
#include "include/parse.h"

/* Capacities (per slot) are chosen by the control plane from the rule set
 * and passed as -D flags; these defaults fit ~1,000 rules. */
#ifndef FW_MAX_RULES
#define FW_MAX_RULES 1024          /* rule bits (expanded rules) per slot, <= 16384 */
#endif
#ifndef FW_MAX_CLASSES
#define FW_MAX_CLASSES 8192        /* class records per slot */
#endif
#ifndef FW_POOL_WORDS
#define FW_POOL_WORDS 16384        /* non-zero bitmap words per slot */
#endif
#ifndef FW_MAX_PREFIXES
#define FW_MAX_PREFIXES 8192       /* LPM entries, both slots together */
#endif
#ifndef FW_RL_ENTRIES
#define FW_RL_ENTRIES 16384        /* rate-limit buckets (one per rule and source) */
#endif

#define FW_SUMMARY 4               /* summary words: 4 x 64 words x 64 bits = 16,384 rules */
#define FW_PORT_NONE 65536         /* port index for packets without ports */
#define FW_PORTS (65536 + 1)
#define FW_L4_SIZE 512             /* 0..255 protocol; 256 + flags for TCP with a header */
#define FW_SPECIAL 8               /* counters 0..7 are not rules, see FW_CTR_* */
#define FW_COUNTERS (FW_SPECIAL + 2 * FW_MAX_RULES)

/* actions */
#define FW_ALLOW 0
#define FW_DROP 1
#define FW_RATE_LIMIT 2

/* policy for non-first fragments (they carry no ports) */
#define FW_FRAG_L3 0               /* classify on addresses and protocol only */
#define FW_FRAG_PASS 1
#define FW_FRAG_DROP 2

/* special counters */
#define FW_CTR_DEFAULT 0           /* no rule matched: the default policy decided */
#define FW_CTR_NOT_IP 1            /* ARP and other non-IP frames: passed */
#define FW_CTR_MALFORMED 2         /* truncated or unparseable headers: dropped */
#define FW_CTR_FRAGMENT 3          /* non-first fragments under fragments: pass|drop */
#define FW_CTR_UNCONFIGURED 4      /* no rule set applied yet: passed */

struct fw_active {                 /* fw_active[0]: which slot packets use */
    u32 slot;                      /* 0 or 1: the two values differ in one byte, so a
                                      reader can never see a torn value */
    u32 generation;                /* how many rule sets were applied (for status) */
};

struct fw_slotcfg {                /* fw_slot[slot]: per-rule-set settings */
    u8 valid;
    u8 default_action;             /* FW_ALLOW or FW_DROP */
    u8 fragments;                  /* FW_FRAG_* */
    u8 pad;
    u32 nrules;
};

struct fw_lpm_key {                /* fw_addr key */
    u32 prefixlen;                 /* 8 + address prefix length */
    u8 data[20];                   /* [0] = slot << 2 | dim << 1 | is_ipv6; [1..16] address */
};

struct fw_class {                  /* fw_class[i]: one bitmap over rules, compressed */
    u64 sum[FW_SUMMARY];           /* bit w set: word w of the bitmap is non-zero */
    u32 base[FW_SUMMARY];          /* slot-relative fw_pool index of sum[k]'s first word */
};

struct fw_rule {                   /* fw_rule[slot * FW_MAX_RULES + bit] */
    u8 action;
    u8 pad[3];
    u32 counter;                   /* fw_stats index */
    u32 rl_id;                     /* rate-limit bucket id (unique per rule) */
    u32 pad2;
    u64 interval_ns;               /* rate limit: ns per packet (1e9 / rate) */
    u64 tolerance_ns;              /* rate limit: (burst - 1) * interval_ns */
};

struct fw_counter {
    u64 packets;
    u64 bytes;
    u64 limited;                   /* rate-limit rules: packets dropped over the limit */
};

struct fw_rl_key {
    u32 rl_id;
    u32 family;
    u8 addr[16];
};

struct fw_rl_val {
    u64 tat;                       /* GCRA "theoretical arrival time" of the next packet */
};

BPF_ARRAY(fw_active, struct fw_active, 1);
BPF_ARRAY(fw_slot, struct fw_slotcfg, 2);
BPF_LPM_TRIE(fw_addr, struct fw_lpm_key, u32, FW_MAX_PREFIXES);
BPF_ARRAY(fw_port, u32, 2 * 2 * FW_PORTS);
BPF_ARRAY(fw_l4, u32, 2 * FW_L4_SIZE);
BPF_ARRAY(fw_class, struct fw_class, 2 * FW_MAX_CLASSES);
BPF_ARRAY(fw_pool, u64, 2 * FW_POOL_WORDS);
BPF_ARRAY(fw_rule, struct fw_rule, 2 * FW_MAX_RULES);
BPF_PERCPU_ARRAY(fw_stats, struct fw_counter, FW_COUNTERS);
BPF_TABLE("lru_hash", struct fw_rl_key, struct fw_rl_val, fw_ratelimit, FW_RL_ENTRIES);

/* Bit tricks without loops: the BPF instruction set has no popcount. */
static __always_inline u32 fw_popcount(u64 x)
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return (x * 0x0101010101010101ULL) >> 56;
}

/* index of the lowest set bit (x != 0) */
static __always_inline u32 fw_ctz(u64 x)
{
    return fw_popcount((x & -x) - 1);
}

static __always_inline void fw_count(u32 idx, u64 bytes, int limited)
{
    struct fw_counter *c = fw_stats.lookup(&idx);
    if (c) {
        c->packets += 1;           /* per-CPU slot: no atomics needed */
        c->bytes += bytes;
        if (limited)
            c->limited += 1;
    }
}

/* The bitmap word of class c in summary block k whose summary bit is the
 * lowest bit of `below + 1`: its position in the pool is its rank among the
 * class's non-zero words. */
static __always_inline u64 fw_word(struct fw_class *c, u32 pool_base, int k, u64 below)
{
    u32 idx = pool_base + c->base[k] + fw_popcount(c->sum[k] & below);
    u64 *w = fw_pool.lookup(&idx);
    return w ? *w : 0;
}

/* Class numbers and pool offsets in the maps are relative to their slot, so a
 * slot's contents do not depend on which slot they are written to. */
static __always_inline struct fw_class *fw_class_of(u32 slot, u32 *cls)
{
    if (!cls || *cls >= FW_MAX_CLASSES)
        return 0;
    u32 idx = slot * FW_MAX_CLASSES + *cls;
    return fw_class.lookup(&idx);
}

/* --8<-- [start:ratelimit] */
/* Token bucket in one timestamp (GCRA): a packet conforms if the bucket's
 * theoretical arrival time is at most `tolerance` ahead of now; each
 * conforming packet pushes it `interval` further. Updated with
 * compare-and-swap, so two CPUs never both spend the same token. */
static __always_inline int fw_rate_ok(struct fw_rule *r, int is_v6, struct fw_lpm_key *src)
{
    struct fw_rl_key key = {};
    key.rl_id = r->rl_id;
    key.family = is_v6 ? 6 : 4;
    __builtin_memcpy(key.addr, &src->data[1], 16);   /* IPv4: 4 bytes + zeros */
    u64 now = bpf_ktime_get_ns();
    struct fw_rl_val *v = fw_ratelimit.lookup(&key);
    if (!v) {
        struct fw_rl_val fresh = { .tat = now + r->interval_ns };
        if (fw_ratelimit.update(&key, &fresh) == 0)
            return 1;
        v = fw_ratelimit.lookup(&key);
        if (!v)
            return 1;
    }
#pragma unroll
    for (int attempt = 0; attempt < 4; attempt++) {
        u64 old = v->tat;
        u64 tat = old > now ? old : now;
        if (tat - now > r->tolerance_ns)
            return 0;              /* bucket empty: over the limit */
        if (__sync_val_compare_and_swap(&v->tat, old, tat + r->interval_ns) == old)
            return 1;
    }
    return 0;                      /* heavy contention on one source: treat as over */
}
/* --8<-- [end:ratelimit] */

int xdp_firewall(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    u64 bytes = data_end - data;
    struct pl_cursor c = { .pos = data, .end = data_end };
    struct ethhdr *eth;
    int proto = parse_ethhdr(&c, &eth, 0);
    if (proto < 0) {
        /* truncated Ethernet/VLAN header, or more VLAN tags than we look through:
         * dropping is the only safe answer (passing would be a bypass) */
        fw_count(FW_CTR_MALFORMED, bytes, 0);
        return XDP_DROP;
    }
    if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6)) {
        fw_count(FW_CTR_NOT_IP, bytes, 0);
        return XDP_PASS;           /* ARP and friends: the firewall filters IP only */
    }

    /* --8<-- [start:slot] */
    u32 zero = 0;
    struct fw_active *act = fw_active.lookup(&zero);
    if (!act)
        return XDP_PASS;
    u32 slot = act->slot & 1;      /* read once: this packet uses this rule set only */
    struct fw_slotcfg *cfg = fw_slot.lookup(&slot);
    if (!cfg || !cfg->valid) {
        fw_count(FW_CTR_UNCONFIGURED, bytes, 0);
        return XDP_PASS;
    }
    /* --8<-- [end:slot] */

    struct fw_lpm_key skey = {}, dkey = {};
    int is_v6 = proto == bpf_htons(ETH_P_IPV6);
    int l4 = -1;
    int later_fragment = 0;
    if (!is_v6) {
        struct iphdr *ip;
        l4 = parse_iphdr(&c, &ip);
        if (l4 < 0)
            goto malformed;
        later_fragment = pl_ipv4_is_later_fragment(ip);
        /* RFC 1858: a fragment at offset 8 could overwrite the TCP flags of the first */
        if (l4 == IPPROTO_TCP && (ip->frag_off & bpf_htons(0x1fff)) == bpf_htons(1))
            goto malformed;
        skey.prefixlen = dkey.prefixlen = 8 + 32;
        __builtin_memcpy(&skey.data[1], &ip->saddr, 4);
        __builtin_memcpy(&dkey.data[1], &ip->daddr, 4);
    } else {
        struct ipv6hdr *ip6;
        u16 frag_off = 0;
        l4 = parse_ip6hdr(&c, &ip6, &frag_off);
        if (l4 < 0)
            goto malformed;
        if (l4 == IPPROTO_HOPOPTS || l4 == IPPROTO_ROUTING || l4 == IPPROTO_DSTOPTS ||
            l4 == IPPROTO_FRAGMENT)
            goto malformed;        /* more extension headers than we walk */
        later_fragment = frag_off != 0;
        skey.prefixlen = dkey.prefixlen = 8 + 128;
        __builtin_memcpy(&skey.data[1], &ip6->saddr, 16);
        __builtin_memcpy(&dkey.data[1], &ip6->daddr, 16);
    }
    skey.data[0] = (slot << 2) | (0 << 1) | is_v6;
    dkey.data[0] = (slot << 2) | (1 << 1) | is_v6;

    if (later_fragment && cfg->fragments != FW_FRAG_L3) {
        fw_count(FW_CTR_FRAGMENT, bytes, 0);
        return cfg->fragments == FW_FRAG_PASS ? XDP_PASS : XDP_DROP;
    }

    /* Layer 4: ports and TCP flags, unless this is a later fragment (no L4 header). */
    u32 dport = FW_PORT_NONE, sport = FW_PORT_NONE;
    u32 l4idx = l4 & 0xff;
    if (!later_fragment && l4 == IPPROTO_TCP) {
        struct tcphdr *tcp;
        if (parse_tcphdr(&c, &tcp) < 0)
            goto malformed;        /* also catches "tiny" first fragments */
        dport = bpf_ntohs(tcp->dest);
        sport = bpf_ntohs(tcp->source);
        l4idx = 256 + ((u8 *)tcp)[13];
    } else if (!later_fragment && l4 == IPPROTO_UDP) {
        struct udphdr *udp;
        if (parse_udphdr(&c, &udp) < 0)
            goto malformed;
        dport = bpf_ntohs(udp->dest);
        sport = bpf_ntohs(udp->source);
    }

    /* --8<-- [start:classify] */
    /* Five lookups give five classes. */
    struct fw_class *cs = fw_class_of(slot, fw_addr.lookup(&skey));
    struct fw_class *cd = fw_class_of(slot, fw_addr.lookup(&dkey));
    u32 pidx = (slot * 2 + 0) * FW_PORTS + dport;
    struct fw_class *cdp = fw_class_of(slot, fw_port.lookup(&pidx));
    pidx = (slot * 2 + 1) * FW_PORTS + sport;
    struct fw_class *csp = fw_class_of(slot, fw_port.lookup(&pidx));
    l4idx += slot * FW_L4_SIZE;
    struct fw_class *cl = fw_class_of(slot, fw_l4.lookup(&l4idx));
    if (!cs || !cd || !cdp || !csp || !cl)
        goto nomatch;

    /* AND the summaries; for each word that is non-zero in all five, AND the words. */
    u32 pool_base = slot * FW_POOL_WORDS;
    u32 bit = 0;
    int found = 0;
#pragma unroll
    for (int k = 0; k < FW_SUMMARY; k++) {
        u64 cand = cs->sum[k] & cd->sum[k] & cdp->sum[k] & csp->sum[k] & cl->sum[k];
        for (int i = 0; i < 64; i++) {
            if (!cand || found)
                break;
            u64 below = (cand & -cand) - 1;
            u64 w = fw_word(cs, pool_base, k, below) & fw_word(cd, pool_base, k, below)
                  & fw_word(cdp, pool_base, k, below) & fw_word(csp, pool_base, k, below)
                  & fw_word(cl, pool_base, k, below);
            if (w) {
                bit = (k * 64 + fw_popcount(below)) * 64 + fw_ctz(w);
                found = 1;
            }
            cand &= cand - 1;
        }
    }
    if (!found)
        goto nomatch;
    /* --8<-- [end:classify] */

    u32 ridx = slot * FW_MAX_RULES + bit;
    struct fw_rule *r = fw_rule.lookup(&ridx);
    if (!r)
        goto nomatch;
    if (r->action == FW_ALLOW) {
        fw_count(r->counter, bytes, 0);
        return XDP_PASS;
    }
    if (r->action == FW_RATE_LIMIT) {
        if (fw_rate_ok(r, is_v6, &skey)) {
            fw_count(r->counter, bytes, 0);
            return XDP_PASS;
        }
        fw_count(r->counter, bytes, 1);
        return XDP_DROP;
    }
    fw_count(r->counter, bytes, 0);
    return XDP_DROP;

nomatch:
    fw_count(FW_CTR_DEFAULT, bytes, 0);
    return cfg->default_action == FW_ALLOW ? XDP_PASS : XDP_DROP;

malformed:
    fw_count(FW_CTR_MALFORMED, bytes, 0);
    return XDP_DROP;
}
