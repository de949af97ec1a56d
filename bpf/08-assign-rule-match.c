/* 08-assign-rule-match.c — assignment 08.A1: the rule-matching core, for a small fixed rule shape.
 *
 * Spliced into bpf/08-xdp-rule-match.c (region `match`). The program has parsed the frame;
 * your function says which rule decides it. Rules are in the array map rm_rules, in order:
 *
 *   struct rm_rule { u8 proto; u8 action; u16 dport_lo; u16 dport_hi; u16 pad; };
 *   BPF_ARRAY(rm_rules, struct rm_rule, MAX_RULES);    MAX_RULES = 8; proto 0 ends the list
 *
 * dport and the rule's port range are in host byte order; the range is inclusive.
 * The program counts the rule you return and applies its action (or the default policy).
 *
 * TODO: return the index of the FIRST rule whose protocol is `proto` and whose port range
 *       holds `dport`; MAX_RULES if there is none. The verifier needs a loop it can bound:
 *       loop to the constant MAX_RULES, and check each lookup for NULL.
 */
static __always_inline u32 match_rules(u8 proto, u16 dport)
{
    return MAX_RULES;
}
