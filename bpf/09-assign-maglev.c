/* 09-assign-maglev.c — assignment 09.A1: the Maglev lookup of the load balancer.
 *
 * Spliced into bpf/09-lb.c (region `maglev`). For a new flow to a VIP the program calls
 * lb_pick(vip, flow, &slot): which backend slot serves this flow? The control plane wrote
 * each VIP's Maglev table into one row of the `ring` array:
 *
 *   BPF_ARRAY(ring, __u32, LB_MAX_VIPS * LB_MAX_RING);   row vip->index, vip->ring_size entries,
 *                                                        each a backend slot (>= LB_MAX_BACKENDS: none)
 *   lb_flow_hash(flow)  the flow's hash (packetlab.tools.lb.maglev.flow_hash is its Python twin)
 *
 * TODO: check the VIP's ring size (0 or above LB_MAX_RING: no table) and row (< LB_MAX_VIPS),
 *       read the entry at hash % ring_size of the VIP's row, and return 0 with *slot_out set,
 *       or -1 when there is no usable backend. Check the lookup for NULL.
 */
static __always_inline int lb_pick(struct lb_vip *vip, struct lb_flow *flow, __u32 *slot_out)
{
    return -1;
}
