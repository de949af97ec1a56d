static __always_inline int lb_pick(struct lb_vip *vip, struct lb_flow *flow, __u32 *slot_out)
{
    __u32 rs = vip->ring_size;
    if (rs == 0 || rs > LB_MAX_RING || vip->index >= LB_MAX_VIPS)
        return -1;
    __u32 pos = vip->index * LB_MAX_RING + lb_flow_hash(flow) % rs;
    __u32 *slot = ring.lookup(&pos);
    if (!slot || *slot >= LB_MAX_BACKENDS)
        return -1;                                  /* LB_EMPTY: no backend */
    *slot_out = *slot;
    return 0;
}
