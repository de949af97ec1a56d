/* 11b-flow.c — in-kernel flow accounting for the module 11b packet analyzer.
 *
 * Every frame that arrives on the interface is parsed with include/parse.h and
 * counted into a per-flow record keyed by the unidirectional 5-tuple (the
 * NetFlow/IPFIX model: A->B and B->A are two flows):
 *
 *   flows[key]    hash: packets, bytes, first/last seen (bpf_ktime_get_ns,
 *                 CLOCK_MONOTONIC), the OR of the TCP flags seen
 *   events        BPF ring buffer: FLOW_START when a record is created,
 *                 FLOW_END on the first FIN or RST of a TCP flow, and every
 *                 Nth packet a SAMPLE event with its first 128 bytes
 *   stats[i]      per-CPU counters, STAT_* below — including what was LOST:
 *                 records not created because the table was full, and events
 *                 not sent because the ring buffer was full
 *   config[i]     CONF_SAMPLE_EVERY (0: no samples), CONF_VERDICT (XDP_PASS,
 *                 or XDP_DROP to use the program as a counting sink)
 *
 * Python never sees the packets it does not ask for: it reads events and, at
 * the end, the records. Idle timeouts (a UDP flow has no FIN) are userspace's
 * job: it sweeps the table, as a flow exporter's inactive timeout does.
 *
 * The layouts of struct flow_key, flow_value and flow_event, and the STAT_ and
 * EV_ numbers, are mirrored in packetlab/tools/analyzer/records.py.
 */
#include "include/parse.h"
#include "include/bounds.h"

#define SAMPLE_BYTES 128
#ifndef MAX_FLOWS
#define MAX_FLOWS 16384        /* -DMAX_FLOWS=N to make the table smaller (the tests fill it) */
#endif
#ifndef RING_PAGES
#define RING_PAGES 64          /* 64 pages = 256 KiB, shared by all CPUs; -DRING_PAGES=1 to overflow it */
#endif

enum stat {
    STAT_PACKETS = 0,     /* frames seen */
    STAT_BYTES,
    STAT_FLOWS,           /* records created */
    STAT_TABLE_FULL,      /* a new flow found no room in `flows`: not recorded */
    STAT_EVENTS,          /* events written to the ring buffer */
    STAT_RINGBUF_LOST,    /* bpf_ringbuf_reserve failed: the reader is too slow */
    STAT_NOT_IP,          /* ARP, LLDP, truncated or malformed headers */
    NUM_STATS,
};

enum conf {
    CONF_SAMPLE_EVERY = 0,
    CONF_VERDICT,
    NUM_CONF,
};

enum event_type {
    EV_FLOW_START = 1,
    EV_FLOW_END = 2,
    EV_SAMPLE = 3,
};

struct flow_key {
    u8 family;            /* 4 or 6 */
    u8 proto;             /* IPPROTO_* */
    u16 sport;            /* host order; ICMP: type << 8 | code in dport, sport 0 */
    u16 dport;
    u16 pad;
    u8 saddr[16];         /* IPv4 uses the first 4 bytes */
    u8 daddr[16];
};

struct flow_value {
    u64 packets;
    u64 bytes;
    u64 first_ns;
    u64 last_ns;
    u32 tcp_flags;        /* OR of the flags byte of every segment */
    u32 ended;            /* a FIN or RST was seen and FLOW_END was sent */
};

struct flow_event {
    u32 type;             /* EV_* */
    u32 caplen;           /* bytes of data[] that are valid (SAMPLE only) */
    u32 wirelen;          /* the frame's length */
    u32 cpu;
    u64 ts_ns;
    struct flow_key key;
    struct flow_value value;
    u8 data[SAMPLE_BYTES];
};

BPF_HASH(flows, struct flow_key, struct flow_value, MAX_FLOWS);
BPF_RINGBUF_OUTPUT(events, RING_PAGES);
BPF_PERCPU_ARRAY(stats, u64, NUM_STATS);
BPF_ARRAY(config, u32, NUM_CONF);
BPF_PERCPU_ARRAY(sample_clock, u64, 1);

static __always_inline void count(u32 idx, u64 n)
{
    u64 *v = stats.lookup(&idx);
    if (v)
        *v += n;          /* per-CPU slot: plain adds are safe */
}

static __always_inline u32 conf(u32 idx)
{
    u32 *v = config.lookup(&idx);
    return v ? *v : 0;
}

static __always_inline u32 verdict(void)
{
    return conf(CONF_VERDICT) == XDP_DROP ? XDP_DROP : XDP_PASS;
}

static __always_inline void emit(struct xdp_md *ctx, u32 type, struct flow_key *key, struct flow_value *val,
                                 u64 now, u32 wirelen)
{
    struct flow_event *ev = events.ringbuf_reserve(sizeof(struct flow_event));
    if (!ev) {
        count(STAT_RINGBUF_LOST, 1);
        return;
    }
    ev->type = type;
    ev->caplen = 0;
    ev->wirelen = wirelen;
    ev->cpu = bpf_get_smp_processor_id();
    ev->ts_ns = now;
    __builtin_memcpy(&ev->key, key, sizeof(*key));
    __builtin_memcpy(&ev->value, val, sizeof(*val));
    if (type == EV_SAMPLE && wirelen > 0) {
        u64 n = wirelen < SAMPLE_BYTES ? wirelen : SAMPLE_BYTES;
        PL_LEN_1_TO(n, SAMPLE_BYTES);  /* 1..128 on the helper's own register, for every verifier */
        if (bpf_xdp_load_bytes(ctx, 0, ev->data, n) == 0)
            ev->caplen = n;
    }
    events.ringbuf_submit(ev, 0);
    count(STAT_EVENTS, 1);
}

int xdp_flow(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    u32 len = data_end - data;
    struct pl_cursor c = { .pos = data, .end = data_end };
    struct ethhdr *eth;
    struct flow_key key = {};
    u32 flags = 0;
    int proto;

    count(STAT_PACKETS, 1);
    count(STAT_BYTES, len);
    int eth_proto = parse_ethhdr(&c, &eth, NULL);
    int later_fragment = 0;   /* a fragment after the first has no L4 header: ports stay 0 */
    if (eth_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip;
        proto = parse_iphdr(&c, &ip);
        if (proto < 0)
            goto not_ip;
        key.family = 4;
        __builtin_memcpy(key.saddr, &ip->saddr, 4);
        __builtin_memcpy(key.daddr, &ip->daddr, 4);
        later_fragment = pl_ipv4_is_later_fragment(ip);
    } else if (eth_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6;
        __u16 frag_off = 0;
        proto = parse_ip6hdr(&c, &ip6, &frag_off);
        if (proto < 0)
            goto not_ip;
        key.family = 6;
        __builtin_memcpy(key.saddr, &ip6->saddr, 16);
        __builtin_memcpy(key.daddr, &ip6->daddr, 16);
        later_fragment = frag_off != 0;
    } else {
        goto not_ip;
    }
    key.proto = proto;

    /* --8<-- [start:flow-ports] */
    if (later_fragment) {
        /* counted in a record of its own, ports 0: reassembly is userspace's job */
    } else if (proto == IPPROTO_TCP) {
        struct tcphdr *th;
        if (parse_tcphdr(&c, &th) == 0) {
            key.sport = bpf_ntohs(th->source);
            key.dport = bpf_ntohs(th->dest);
            flags = ((u8 *)th)[13];
        }
    } else if (proto == IPPROTO_UDP) {
        struct udphdr *uh;
        if (parse_udphdr(&c, &uh) == 0) {
            key.sport = bpf_ntohs(uh->source);
            key.dport = bpf_ntohs(uh->dest);
        }
    } else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
        struct icmphdr *ih;
        if (parse_icmphdr(&c, &ih) >= 0)
            key.dport = (u16)ih->type << 8 | ih->code;
    }
    /* --8<-- [end:flow-ports] */

    u64 now = bpf_ktime_get_ns();
    /* --8<-- [start:flow-record] */
    struct flow_value *val = flows.lookup(&key);
    if (val) {
        __sync_fetch_and_add(&val->packets, 1);
        __sync_fetch_and_add(&val->bytes, len);
        val->last_ns = now;
        val->tcp_flags |= flags;
        if ((flags & 0x05) && !val->ended) {     /* FIN or RST: the flow ends */
            val->ended = 1;
            emit(ctx, EV_FLOW_END, &key, val, now, len);
        }
    } else {
        struct flow_value init = { .packets = 1, .bytes = len, .first_ns = now, .last_ns = now,
                                   .tcp_flags = flags, .ended = (flags & 0x05) ? 1 : 0 };
        if (flows.update(&key, &init) == 0) {    /* BPF_ANY: a racing CPU's first packet may be overwritten */
            count(STAT_FLOWS, 1);
            emit(ctx, EV_FLOW_START, &key, &init, now, len);
            if (init.ended)
                emit(ctx, EV_FLOW_END, &key, &init, now, len);
        } else {
            count(STAT_TABLE_FULL, 1);
        }
    }
    /* --8<-- [end:flow-record] */

    u32 every = conf(CONF_SAMPLE_EVERY);
    if (every) {
        u32 zero = 0;
        u64 *clock = sample_clock.lookup(&zero);
        if (clock) {
            *clock += 1;
            if (*clock >= every) {
                *clock = 0;
                struct flow_value *cur = flows.lookup(&key);
                if (cur)
                    emit(ctx, EV_SAMPLE, &key, cur, now, len);
            }
        }
    }
    return verdict();

not_ip:
    count(STAT_NOT_IP, 1);
    return verdict();
}
