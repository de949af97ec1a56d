/* toolkit_fail_unchecked_read.c — rejected by the verifier on purpose.
 *
 * Reads the EtherType without first proving that 14 bytes of packet exist
 * (no comparison with data_end). The toolkit test asserts that the rejection
 * comes back as a VerifierError pointing at the line below marked HERE.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>

int xdp_unchecked(struct xdp_md *ctx)
{
    struct ethhdr *eth = (void *)(long)ctx->data;
    if (eth->h_proto == 0)   /* HERE: no bounds check before this read */
        return XDP_DROP;
    return XDP_PASS;
}
