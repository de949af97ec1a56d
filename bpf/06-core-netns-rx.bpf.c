/* 06-core-netns-rx.bpf.c — the libbpf CO-RE path: count frames received in ONE
 * network namespace, by EtherType.
 *
 * Built with clang against vmlinux.h (generated on this machine from the
 * running kernel's BTF by `bpftool btf dump file /sys/kernel/btf/vmlinux
 * format c`), loaded and pinned with `bpftool prog load`, attached as a
 * BTF-enabled tracepoint (tp_btf) on net:netif_receive_skb.
 *
 * The tracepoint fires for every frame in every namespace, so the program
 * follows skb->dev->nd_net.net->ns.inum to the frame's namespace and counts
 * only frames of the namespace whose inode user space wrote into target_netns.
 * Those struct offsets change between kernel versions; BPF_CORE_READ records
 * each field access as a CO-RE relocation, and libbpf rewrites the offsets at
 * load time to match the running kernel's BTF. The `layout` map reports the
 * offsets libbpf chose, to compare with what bcc compiled in (06-tp-netns-rx.c).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);              /* inode number of the namespace to watch */
} target_netns SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);                /* EtherType, host byte order (0x0800 = IPv4) */
    __type(value, __u64);              /* frames */
} frames_by_proto SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 3);
    __type(key, __u32);
    __type(value, __u32);              /* 0: sk_buff.dev  1: net_device.nd_net  2: ns_common.inum */
} layout SEC(".maps");

static __always_inline void record_layout(void)
{
    __u32 k0 = 0, k1 = 1, k2 = 2;
    __u32 v0 = bpf_core_field_offset(struct sk_buff, dev);
    __u32 v1 = bpf_core_field_offset(struct net_device, nd_net);
    __u32 v2 = bpf_core_field_offset(struct ns_common, inum);
    bpf_map_update_elem(&layout, &k0, &v0, BPF_ANY);
    bpf_map_update_elem(&layout, &k1, &v1, BPF_ANY);
    bpf_map_update_elem(&layout, &k2, &v2, BPF_ANY);
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(count_netns_rx, struct sk_buff *skb)
{
    __u32 zero = 0;
    __u32 *want = bpf_map_lookup_elem(&target_netns, &zero);
    if (!want || *want == 0)
        return 0;
    record_layout();
    __u32 inum = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);   /* relocated at load time */
    if (inum != *want)
        return 0;
    __u32 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
    __u64 *frames = bpf_map_lookup_elem(&frames_by_proto, &proto);
    if (frames) {
        __sync_fetch_and_add(frames, 1);
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&frames_by_proto, &proto, &one, BPF_NOEXIST);
    }
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
