/* 06-fail-uninit-stack.c — Verifier Diary entry 3: REJECTED on purpose
 * (for a loader without CAP_PERFMON, e.g. a container given only CAP_BPF and
 * CAP_NET_ADMIN; the diary loads it that way).
 *
 * Why it fails: `struct flow_event ev;` is not initialised and the ports are
 * only filled in for TCP, yet all 24 bytes are handed to bpf_ringbuf_output(),
 * which copies them to user space. For a UDP packet 8 of them are whatever an
 * earlier function left on the stack; stale kernel bytes would leak, so the
 * verifier refuses. (A loader with CAP_PERFMON may read uninitialised stack
 * since Linux 6.3, and on recent 6.1 updates: the bytes are then simply
 * garbage, which is still a bug.)
 * The fix is 06-fixed-uninit-stack.c.
 *
 * Every field is a u64, so every store is a whole 8-byte stack slot: on
 * kernels without a 6.13 fix (Debian 12's 6.1 among them) a loader without
 * CAP_PERFMON may not write part of a slot that holds a spilled register
 * ("attempt to corrupt spilled pointer on stack"), which rejects ordinary
 * u32/u16 fields for a reason that is not this entry's.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/tcp.h>

struct flow_event {
    u64 saddr;
    u64 daddr;
    u64 ports;      /* TCP: source port << 16 | destination port (network order) */
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
    struct flow_event ev;
    ev.saddr = ip->saddr;
    ev.daddr = ip->daddr;
    struct tcphdr *tcp = (void *)(ip + 1);
    if (ip->protocol == IPPROTO_TCP && (void *)(tcp + 1) <= data_end)
        ev.ports = (u64)tcp->source << 16 | tcp->dest;
    flow_events.ringbuf_output(&ev, sizeof(ev), 0);   /* REJECTED HERE: ev.ports may be unset */
    return XDP_PASS;
}
