/* 06-tp-netns-rx.c — the bcc twin of 06-core-netns-rx.bpf.c: the same counter
 * (frames received in one network namespace, by EtherType) written for bcc.
 *
 * bcc compiles this at load time against the kernel headers it finds in
 * /lib/modules/$(uname -r)/build. The struct offsets used to walk
 * skb->dev->nd_net.net->ns.inum are fixed at compile time from those headers
 * (no relocation), so they are right only if the headers match the running
 * kernel. The `layout` map reports the offsets bcc compiled in; the lab
 * compares them with what CO-RE found in the kernel's BTF.
 */
#include <linux/skbuff.h>
#include <linux/netdevice.h>
#include <net/net_namespace.h>

BPF_ARRAY(target_netns, u32, 1);       /* inode number of the namespace to watch */
BPF_HASH(frames_by_proto, u32, u64, 64);
BPF_ARRAY(layout, u32, 3);             /* 0: sk_buff.dev  1: net_device.nd_net  2: ns_common.inum */

TRACEPOINT_PROBE(net, netif_receive_skb)
{
    u32 zero = 0;
    u32 *want = target_netns.lookup(&zero);
    if (!want || *want == 0)
        return 0;
    u32 k0 = 0, k1 = 1, k2 = 2;
    u32 v0 = offsetof(struct sk_buff, dev);
    u32 v1 = offsetof(struct net_device, nd_net);
    u32 v2 = offsetof(struct ns_common, inum);
    layout.update(&k0, &v0);
    layout.update(&k1, &v1);
    layout.update(&k2, &v2);

    struct sk_buff *skb = (struct sk_buff *)args->skbaddr;
    struct net_device *dev = NULL;
    struct net *net = NULL;
    u32 inum = 0;
    bpf_probe_read_kernel(&dev, sizeof(dev), (char *)skb + v0);            /* offsets from the headers */
    bpf_probe_read_kernel(&net, sizeof(net), (char *)dev + v1);
    bpf_probe_read_kernel(&inum, sizeof(inum), (char *)net + offsetof(struct net, ns) + v2);
    if (inum != *want)
        return 0;
    u16 proto_be = 0;
    bpf_probe_read_kernel(&proto_be, sizeof(proto_be), (char *)skb + offsetof(struct sk_buff, protocol));
    u32 proto = ntohs(proto_be);
    u64 *frames = frames_by_proto.lookup(&proto);
    if (frames) {
        __sync_fetch_and_add(frames, 1);
    } else {
        u64 one = 1;
        frames_by_proto.update(&proto, &one);
    }
    return 0;
}
