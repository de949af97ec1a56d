/* 06-fail-bad-helper.c — Verifier Diary entry 6: REJECTED on purpose.
 *
 * Why it fails: bpf_skb_load_bytes() is a helper for programs that see a
 * struct sk_buff (tc, socket filters). An XDP program runs before any sk_buff
 * exists, so the XDP program type does not offer that helper: each program
 * type has its own list of allowed helpers (see `bpftool feature probe`).
 * The fix is 06-fixed-bad-helper.c.
 */
#include <uapi/linux/bpf.h>

BPF_ARRAY(first_word, u32, 1);

int xdp_first_word(struct xdp_md *ctx)
{
    u32 word = 0;
    bpf_skb_load_bytes(ctx, 0, &word, sizeof(word));   /* REJECTED HERE: a tc helper in XDP */
    u32 zero = 0;
    u32 *out = first_word.lookup(&zero);
    if (out)
        *out = word;
    return XDP_PASS;
}
