/* 06-fail-uninit-stack.c — Verifier Diary entry 3: REJECTED on purpose
 * (for a loader without CAP_PERFMON, e.g. a container given only CAP_BPF and
 * CAP_NET_ADMIN; the diary loads it that way).
 *
 * Why it fails: `struct flow_event ev;` is not initialised. The ports are only
 * filled in for TCP, and the 3 padding bytes after `proto` are never written,
 * yet all 16 bytes are handed to bpf_ringbuf_output(), which copies them to
 * user space. Stale kernel stack bytes would leak, so the verifier refuses.
 * (With CAP_PERFMON, kernels >= 6.3 accept uninitialised stack reads: the
 * bytes are then simply garbage, which is still a bug.)
 * The fix is 06-fixed-uninit-stack.c.
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
    struct flow_event ev;
    ev.saddr = ip->saddr;
    ev.daddr = ip->daddr;
    ev.proto = ip->protocol;
    struct tcphdr *tcp = (void *)(ip + 1);
    if (ip->protocol == IPPROTO_TCP && (void *)(tcp + 1) <= data_end) {
        ev.sport = tcp->source;
        ev.dport = tcp->dest;
    }
    flow_events.ringbuf_output(&ev, sizeof(ev), 0);   /* REJECTED HERE: ports and padding may be unset */
    return XDP_PASS;
}
