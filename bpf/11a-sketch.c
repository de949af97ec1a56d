/* 11a-sketch.c — per-flow traffic telemetry in XDP: exact hash maps or a Count-Min Sketch.
 *
 * Every frame gets XDP_PASS: this program only counts. What it counts into is
 * chosen per packet by one 32-bit control word that userspace writes:
 *
 *   ctl[0] = epoch << 1 | mode        mode 0 = exact, 1 = sketch
 *   slot   = epoch & 1                every structure below has two slots
 *
 * exact mode   flows[{slot, 5-tuple}] and sources[{slot, source}] in plain
 *              HASH maps (packets and bytes, atomic adds). A flow that does not
 *              fit (the map is full) is counted in the sketch instead and in
 *              ST_FULL: a full map never loses a count.
 * sketch mode  cms[slot][row][col], SK_DEPTH rows of SK_WIDTH u32 counters
 *              (one atomic add per row), and hh[slot][SK_HH]: heavy-hitter
 *              candidates (key, estimate) in a 2-choice table, so userspace can
 *              name the heavy flows instead of only estimating a key it knows.
 *
 * Switching mode or swapping slots is one write of ctl[0]; each run reads the
 * word once, so every packet is counted in exactly one structure of exactly one
 * slot. After the write, userspace waits for an RCU grace period (every run
 * that saw the old word has finished) and then reads the old slot, which no
 * program touches any more: a consistent snapshot, and no count lost.
 *
 * The hash (the same arithmetic is in packetlab/tools/sketch/model.py):
 *   h   = fold of the 40-byte key (slot byte zero) as five little-endian u64
 *         words: h = (h ^ word) * K; h ^= h >> 32       (K = 0x9E3779B97F4A7C15)
 *   row i: col = fmix64(h ^ SEED[i]) >> (64 - SK_WIDTH_LOG2)
 * i.e. the key is read once and each row re-mixes the 64-bit digest with its
 * own seed through murmur3's finaliser (multiply-shift: the top bits of a
 * product are the well-mixed ones). No loops the verifier must bound beyond
 * constant unrolled ones, no division, no helper calls.
 *
 * Sizes are compile-time (-D flags, see packetlab/tools/sketch/layout.py);
 * the layout of every struct is mirrored there.
 */
#include "include/parse.h"

#ifndef SK_DEPTH
#define SK_DEPTH 4
#endif
#ifndef SK_WIDTH_LOG2
#define SK_WIDTH_LOG2 12
#endif
#ifndef SK_HH
#define SK_HH 512             /* heavy-hitter candidates per slot, a power of two */
#endif
#ifndef SK_FLOWS
#define SK_FLOWS 16384        /* exact flow map capacity (both slots together) */
#endif
#ifndef SK_SOURCES
#define SK_SOURCES 4096
#endif
#define SK_WIDTH (1 << SK_WIDTH_LOG2)
#define SK_CELLS (SK_DEPTH * SK_WIDTH)

#define MODE_SKETCH 1

enum stat {
    ST_PACKETS = 0,      /* every frame seen */
    ST_OTHER,            /* not IPv4/IPv6 or malformed: no flow to count */
    ST_EXACT,            /* counted in the exact flow map */
    ST_SKETCH,           /* counted in the sketch (sketch mode, or spilled) */
    ST_NEW_FLOWS,        /* flows inserted into the exact map */
    ST_FULL,             /* exact map full: spilled into the sketch */
    NUM_STATS,
};

struct flow_key {
    u8 family;           /* 4 or 6 */
    u8 proto;
    u8 slot;             /* zero while hashing; the slot in the exact map */
    u8 pad;
    __be16 sport;        /* zero for ICMP, other protocols and later fragments */
    __be16 dport;
    u8 saddr[16];        /* IPv4 uses the first 4 bytes */
    u8 daddr[16];
};

struct src_key {
    u8 family;
    u8 slot;
    u8 pad[2];
    u8 addr[16];
};

struct counters {
    u64 packets;
    u64 bytes;
};

struct candidate {
    struct flow_key key;
    u32 estimate;
    u32 pad;
};

BPF_ARRAY(ctl, u32, 1);
BPF_PERCPU_ARRAY(stats, u64, 2 * NUM_STATS);
BPF_HASH(flows, struct flow_key, struct counters, SK_FLOWS);
BPF_HASH(sources, struct src_key, struct counters, SK_SOURCES);
BPF_ARRAY(cms, u32, 2 * SK_CELLS);
BPF_ARRAY(hh, struct candidate, 2 * SK_HH);

#define K_MUL 0x9E3779B97F4A7C15ULL

static __always_inline u64 fmix64(u64 h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static __always_inline u64 key_digest(struct flow_key *k)
{
    u64 *w = (u64 *)k;          /* 40 bytes = five u64 words, on the stack */
    u64 h = 0;
#pragma unroll
    for (int i = 0; i < 5; i++) {
        h = (h ^ w[i]) * K_MUL;
        h ^= h >> 32;
    }
    return h;
}

/* The row seeds: the first hex digits of pi (nothing up the sleeve). A switch,
 * not a static array: bcc has no read-only data section, and with the loop
 * unrolled each call folds to one constant. */
static __always_inline u64 row_seed(int i)
{
    switch (i) {
    case 0: return 0x243F6A8885A308D3ULL;
    case 1: return 0x13198A2E03707344ULL;
    case 2: return 0xA4093822299F31D0ULL;
    case 3: return 0x082EFA98EC4E6C89ULL;
    case 4: return 0x452821E638D01377ULL;
    case 5: return 0xBE5466CF34E90C6CULL;
    case 6: return 0xC0AC29B7C97C50DDULL;
    default: return 0x3F84D5B5B5470917ULL;
    }
}

static __always_inline void stat_add(u32 slot, u32 which)
{
    u32 idx = slot * NUM_STATS + which;
    u64 *v = stats.lookup(&idx);
    if (v)
        *v += 1;                 /* per-CPU: plain add */
}

static __always_inline int same_key(struct flow_key *a, struct flow_key *b)
{
    u64 *x = (u64 *)a, *y = (u64 *)b;
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

/* One packet into the sketch of `slot`; keep the key among the candidates if it is heavy. */
static __always_inline void sketch_update(struct flow_key *key, u32 slot)
{
    /* --8<-- [start:cms-update] */
    u64 h = key_digest(key);
    u32 est = 0xffffffff;
    u32 first = 0, second = 0;
#pragma unroll
    for (int i = 0; i < SK_DEPTH && i < 8; i++) {
        u32 col = fmix64(h ^ row_seed(i)) >> (64 - SK_WIDTH_LOG2);
        u32 idx = slot * SK_CELLS + i * SK_WIDTH + col;
        u32 *c = cms.lookup(&idx);
        if (!c)
            return;
        /* bcc compiles for the BPF ISA without fetching atomics, so the add
         * cannot return the old value ("Invalid usage of the XADD return
         * value"): add, then read. Another CPU's add in between only raises
         * the estimate, which a Count-Min estimate may do anyway. */
        __sync_fetch_and_add(c, 1);
        u32 now = *c;
        if (now < est)
            est = now;
        if (i == 0)
            first = col & (SK_HH - 1);
        if (i == 1)
            second = col & (SK_HH - 1);
    }
    /* --8<-- [end:cms-update] */
    /* --8<-- [start:hh-update] */
    if (SK_DEPTH < 2)
        second = (first + 1) & (SK_HH - 1);
    /* Two candidate places: keep the key if it is there, or if it now outweighs
     * the lighter of the two. Races between CPUs may tear an entry: userspace
     * re-estimates every candidate from the sketch, so a torn key only costs a
     * lookup. */
    u32 ia = slot * SK_HH + first, ib = slot * SK_HH + second;
    struct candidate *a = hh.lookup(&ia);
    struct candidate *b = hh.lookup(&ib);
    if (!a || !b)
        return;
    if (same_key(&a->key, key)) {
        a->estimate = est;
        return;
    }
    if (same_key(&b->key, key)) {
        b->estimate = est;
        return;
    }
    struct candidate *lighter = a->estimate <= b->estimate ? a : b;
    if (est > lighter->estimate) {
        __builtin_memcpy(&lighter->key, key, sizeof(*key));
        lighter->estimate = est;
    }
    /* --8<-- [end:hh-update] */
}

static __always_inline void add_counters(struct counters *c, u64 len)
{
    __sync_fetch_and_add(&c->packets, 1);
    __sync_fetch_and_add(&c->bytes, len);
}

/* Exact count of the flow; 0 if the map is full (the caller spills into the sketch). */
static __always_inline int exact_flow(struct flow_key *key, u32 slot, u64 len)
{
    key->slot = slot;
    struct counters *c = flows.lookup(key);
    if (!c) {
        struct counters zero = {};
        /* NOEXIST: of two CPUs inserting the same new flow, one wins and the
         * other adds to the winner's entry below — no first packet is lost. */
        int err = flows.insert(key, &zero);     /* insert() is BPF_NOEXIST; update() would overwrite */
        if (err == 0)
            stat_add(slot, ST_NEW_FLOWS);
        c = flows.lookup(key);
        if (!c) {
            key->slot = 0;
            return 0;
        }
    }
    add_counters(c, len);
    key->slot = 0;
    return 1;
}

static __always_inline void exact_source(struct flow_key *fk, u32 slot, u64 len)
{
    struct src_key key = {};
    key.family = fk->family;
    key.slot = slot;
    __builtin_memcpy(key.addr, fk->saddr, 16);
    struct counters *c = sources.lookup(&key);
    if (!c) {
        struct counters zero = {};
        sources.insert(&key, &zero);
        c = sources.lookup(&key);
        if (!c)
            return;              /* source map full: the per-flow counts still hold every packet */
    }
    add_counters(c, len);
}

/* The 5-tuple of the frame; -1 if it has none (non-IP, malformed). */
static __always_inline int flow_of(struct xdp_md *ctx, struct flow_key *key)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct pl_cursor c = { .pos = data, .end = data_end };
    struct ethhdr *eth;
    int proto, later_fragment;

    int eth_proto = parse_ethhdr(&c, &eth, NULL);
    if (eth_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip;
        proto = parse_iphdr(&c, &ip);
        if (proto < 0)
            return -1;
        key->family = 4;
        __builtin_memcpy(key->saddr, &ip->saddr, 4);
        __builtin_memcpy(key->daddr, &ip->daddr, 4);
        later_fragment = pl_ipv4_is_later_fragment(ip);
    } else if (eth_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6;
        __u16 frag_off = 0;
        proto = parse_ip6hdr(&c, &ip6, &frag_off);
        if (proto < 0)
            return -1;
        key->family = 6;
        __builtin_memcpy(key->saddr, &ip6->saddr, 16);
        __builtin_memcpy(key->daddr, &ip6->daddr, 16);
        later_fragment = frag_off != 0;
    } else {
        return -1;
    }
    key->proto = proto;
    if (later_fragment)
        return 0;
    if (proto == IPPROTO_TCP) {
        struct tcphdr *th;
        if (parse_tcphdr(&c, &th) == 0) {
            key->sport = th->source;
            key->dport = th->dest;
        }
    } else if (proto == IPPROTO_UDP) {
        struct udphdr *uh;
        if (parse_udphdr(&c, &uh) == 0) {
            key->sport = uh->source;
            key->dport = uh->dest;
        }
    }
    return 0;
}

int xdp_sketch(struct xdp_md *ctx)
{
    u32 zero = 0;
    u32 *word = ctl.lookup(&zero);
    if (!word)
        return XDP_PASS;
    u32 control = *word;         /* read once: this packet's mode and slot */
    u32 slot = (control >> 1) & 1;
    u64 len = (u64)(ctx->data_end - ctx->data);
    struct flow_key key = {};

    stat_add(slot, ST_PACKETS);
    if (flow_of(ctx, &key) < 0) {
        stat_add(slot, ST_OTHER);
        return XDP_PASS;
    }
    if (!(control & MODE_SKETCH)) {
        exact_source(&key, slot, len);
        if (exact_flow(&key, slot, len)) {
            stat_add(slot, ST_EXACT);
            return XDP_PASS;
        }
        stat_add(slot, ST_FULL);
    }
    sketch_update(&key, slot);
    stat_add(slot, ST_SKETCH);
    return XDP_PASS;
}
