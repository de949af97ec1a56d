/* 07-xdp-trace.c — see XDP failures from the outside, with the kernel's xdp tracepoints.
 *
 * Not an XDP program: three tracepoint programs (no kprobes needed) that count
 *
 *   xdp:xdp_exception     a program returned XDP_ABORTED, or the driver could
 *                         not carry out its verdict       key {1, prog_id, act}
 *   xdp:xdp_redirect_err  an XDP_REDIRECT could not be done
 *                         (err is a negative errno)       key {2, prog_id, -err}
 *   xdp:xdp_devmap_xmit   a devmap flushed redirected frames to a driver and
 *                         it refused them (err != 0)      key {3, ingress ifindex, -err},
 *                         counted per dropped frame
 *
 * Where a refused redirect shows up depends on the kernel: since Linux 6.3 a
 * devmap checks the target's XDP features before it queues a frame (a veth
 * whose peer has no NAPI: -EOPNOTSUPP in xdp_redirect_err); before, the frame
 * is queued and the driver drops it at flush time (-ENXIO in xdp_devmap_xmit).
 * xdp_devmap_xmit names no program, only interfaces, so its key carries the
 * ingress interface instead of a program id.
 *
 * XDP_DROP leaves no trace here — that is the difference between "drop this"
 * and "my program failed". Keys carry the program id (or ingress interface), so
 * user space can keep only its own events (these tracepoints see the whole machine).
 */
#include <uapi/linux/bpf.h>

struct event_key {
    u32 kind;        /* 1 = exception, 2 = redirect error, 3 = devmap transmit error */
    u32 who;         /* kinds 1, 2: the program's id; kind 3: the ifindex the frames came in on */
    u32 code;        /* the action (exception) or errno (the errors) */
};

BPF_HASH(xdp_events, struct event_key, u64, 1024);

TRACEPOINT_PROBE(xdp, xdp_exception)
{
    struct event_key key = {1, (u32)args->prog_id, args->act};
    xdp_events.increment(key);
    return 0;
}

TRACEPOINT_PROBE(xdp, xdp_redirect_err)
{
    struct event_key key = {2, (u32)args->prog_id, (u32)(-args->err)};
    xdp_events.increment(key);
    return 0;
}

TRACEPOINT_PROBE(xdp, xdp_devmap_xmit)
{
    if (args->err == 0)
        return 0;
    struct event_key key = {3, (u32)args->from_ifindex, (u32)(-args->err)};
    xdp_events.increment(key, args->drops > 0 ? args->drops : 1);
    return 0;
}
