/* 08-xdp-drop.c — the floor of the module 08 benchmark: count, then XDP_DROP.
 *
 * No parsing, no lookups: whatever the firewall costs per packet beyond this
 * program is the price of its rules. (A per-CPU counter, so the benchmark
 * can tell how many packets the receiver really processed.)
 */
#include <uapi/linux/bpf.h>

BPF_PERCPU_ARRAY(dropped, u64, 1);

int xdp_drop_count(struct xdp_md *ctx)
{
    u32 key = 0;
    u64 *count = dropped.lookup(&key);
    if (count)
        *count += 1;
    return XDP_DROP;
}
