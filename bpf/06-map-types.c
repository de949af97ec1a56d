/* 06-map-types.c — one XDP program, five map types, driven by BPF_PROG_TEST_RUN.
 *
 * For every IPv4 frame it updates:
 *   by_proto     ARRAY         u64 per IP protocol number (index 0..255), preallocated, never deleted
 *   per_cpu      PERCPU_ARRAY  one u64 per CPU: frames seen, no atomics needed
 *   by_src       HASH          frames per source address, room for 4 keys; when it
 *                              is full an insert fails and hash_full counts the refusal
 *   lru_by_src   LRU_HASH      the same, room for 4 keys; when it is full the kernel
 *                              evicts the least recently used key to make room
 *   hash_full    ARRAY         how many inserts into by_src failed
 * The lab sends crafted frames through it with test_run and reads each map.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>

BPF_ARRAY(by_proto, u64, 256);
BPF_PERCPU_ARRAY(per_cpu, u64, 1);
BPF_HASH(by_src, u32, u64, 4);
BPF_TABLE("lru_hash", u32, u64, lru_by_src, 4);
BPF_ARRAY(hash_full, u64, 1);

int xdp_map_types(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    u32 zero = 0;

    u64 *mine = per_cpu.lookup(&zero);     /* this CPU's own slot */
    if (mine)
        *mine += 1;

    if ((void *)(ip + 1) > data_end || eth->h_proto != htons(ETH_P_IP))
        return XDP_PASS;

    u32 proto = ip->protocol;
    u64 *n = by_proto.lookup(&proto);
    if (n)
        __sync_fetch_and_add(n, 1);

    u32 src = ip->saddr;
    u64 one = 1;
    n = by_src.lookup(&src);
    if (n) {
        __sync_fetch_and_add(n, 1);
    } else if (by_src.insert(&src, &one) != 0) {     /* -E2BIG: the hash is full */
        u64 *full = hash_full.lookup(&zero);
        if (full)
            __sync_fetch_and_add(full, 1);
    }

    n = lru_by_src.lookup(&src);           /* a lookup also marks the key as recently used */
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        lru_by_src.update(&src, &one);     /* never fails: evicts if full */
    return XDP_PASS;
}
