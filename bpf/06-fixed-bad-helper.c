/* 06-fixed-bad-helper.c — Verifier Diary entry 6, fixed.
 *
 * XDP has its own copy helper, bpf_xdp_load_bytes() (kernel 5.18+), which also
 * works across multi-buffer frames. (Reading through a bounds-checked pointer
 * is the other XDP way.)
 */
#include <uapi/linux/bpf.h>

BPF_ARRAY(first_word, u32, 1);

int xdp_first_word(struct xdp_md *ctx)
{
    u32 word = 0;
    bpf_xdp_load_bytes(ctx, 0, &word, sizeof(word));   /* FIX: the XDP helper */
    u32 zero = 0;
    u32 *out = first_word.lookup(&zero);
    if (out)
        *out = word;
    return XDP_PASS;
}
