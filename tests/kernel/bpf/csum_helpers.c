/* csum_helpers.c — every helper of bpf/include/csum.h, callable from a test frame.
 *
 * tests/kernel/test_toolkit_bpf_csum.py feeds it frames through BPF_PROG_TEST_RUN: 14 bytes of
 * (ignored) Ethernet header, then a struct csum_op, then the bytes the op reads.
 * The helper's result is written back into the frame, so the test compares the
 * kernel-run C with a pure-Python RFC 1624 reference on arbitrary inputs:
 *
 *   op 0  pl_csum_replace2(&check, old16, new16)
 *   op 1  pl_csum_replace4(&check, old, new)
 *   op 2  pl_udp_csum_replace2(&check, old16, new16)
 *   op 3  pl_udp_csum_replace4(&check, old, new)
 *   op 4  check = pl_ipv4_csum(the 20 bytes after the op)
 *   op 5  pl_icmp_csum_zero_message(&check, the `len` bytes after the op)
 *
 * Anything else (short frame, unknown op) -> XDP_ABORTED, which the test treats as a bug.
 */
#include "include/parse.h"
#include "include/csum.h"

struct csum_op {
    __u8   op;
    __u8   pad;
    __sum16 check;                 /* in: HC; out: HC' */
    __be32 old;                    /* ops 0 and 2 use the first 16 bits (bytes 4-5) */
    __be32 new;                    /* ops 0 and 2 use the first 16 bits (bytes 8-9) */
    __u32  len;                    /* op 5: message length (host order) */
};

int xdp_csum_helpers(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct csum_op *op = data + sizeof(struct ethhdr);
    if ((void *)(op + 1) > end)
        return XDP_ABORTED;
    void *arg = op + 1;
    switch (op->op) {
    case 0:
        pl_csum_replace2(&op->check, *(__be16 *)&op->old, *(__be16 *)&op->new);
        return XDP_PASS;
    case 1:
        pl_csum_replace4(&op->check, op->old, op->new);
        return XDP_PASS;
    case 2:
        pl_udp_csum_replace2(&op->check, *(__be16 *)&op->old, *(__be16 *)&op->new);
        return XDP_PASS;
    case 3:
        pl_udp_csum_replace4(&op->check, op->old, op->new);
        return XDP_PASS;
    case 4: {
        struct iphdr *ip = arg;
        if ((void *)(ip + 1) > end)
            return XDP_ABORTED;
        op->check = pl_ipv4_csum(ip);
        return XDP_PASS;
    }
    case 5:
        pl_icmp_csum_zero_message(&op->check, arg, op->len, end);
        return XDP_PASS;
    }
    return XDP_ABORTED;
}
