/* 06-fail-packet-bounds.c — Verifier Diary entry 1: REJECTED on purpose.
 *
 * Why it fails: the program proves that the 14-byte Ethernet header is inside
 * the packet, then reads the IPv4 protocol byte (offset 23) without proving
 * that the IPv4 header is there too. On a 14-byte frame that read would run
 * off the end of the packet, so the verifier refuses the whole program.
 * The fix is 06-fixed-packet-bounds.c.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>

BPF_ARRAY(protocols, u64, 256);

int xdp_protocols(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    u32 proto = ip->protocol;          /* REJECTED HERE: no check that ip + 1 <= data_end */
    u64 *count = protocols.lookup(&proto);
    if (count)
        __sync_fetch_and_add(count, 1);
    return XDP_PASS;
}
