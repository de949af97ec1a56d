/* 06-fixed-uninit-stack.c — Verifier Diary entry 3, fixed.
 *
 * `struct flow_event ev = {};` zeroes every byte, padding included, before any
 * field is set, so whatever path is taken the 16 bytes copied to the ring
 * buffer are initialised (ports are 0 for non-TCP packets).
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/tcp.h>

struct flow_event {
    u32 saddr;
    u32 daddr;
    u16 sport;
    u16 dport;
    u8 proto;
};

BPF_RINGBUF_OUTPUT(flow_events, 8);

int xdp_flow_events(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || eth->h_proto != htons(ETH_P_IP))
        return XDP_PASS;
    struct flow_event ev = {};         /* FIX: every byte, padding included, is written */
    ev.saddr = ip->saddr;
    ev.daddr = ip->daddr;
    ev.proto = ip->protocol;
    struct tcphdr *tcp = (void *)(ip + 1);
    if (ip->protocol == IPPROTO_TCP && (void *)(tcp + 1) <= data_end) {
        ev.sport = tcp->source;
        ev.dport = tcp->dest;
    }
    flow_events.ringbuf_output(&ev, sizeof(ev), 0);
    return XDP_PASS;
}
