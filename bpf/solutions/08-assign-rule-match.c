/* The index of the first rule matching (proto, dport), or MAX_RULES if none does. */
static __always_inline u32 match_rules(u8 proto, u16 dport)
{
#pragma unroll
    for (u32 i = 0; i < MAX_RULES; i++) {
        u32 key = i;
        struct rm_rule *r = rm_rules.lookup(&key);
        if (!r || r->proto == 0)
            break;               /* end of the list */
        if (r->proto == proto && dport >= r->dport_lo && dport <= r->dport_hi)
            return i;
    }
    return MAX_RULES;
}
