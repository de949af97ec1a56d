/* 07-xdp-trace.c — see XDP failures from the outside, with the kernel's xdp tracepoints.
 *
 * Not an XDP program: two tracepoint programs (no kprobes needed) that count
 *
 *   xdp:xdp_exception     a program returned XDP_ABORTED, or the driver could
 *                         not carry out its verdict       key {1, prog_id, act}
 *   xdp:xdp_redirect_err  an XDP_REDIRECT could not be done
 *                         (err is a negative errno)       key {2, prog_id, -err}
 *
 * XDP_DROP leaves no trace here — that is the difference between "drop this"
 * and "my program failed". Keys carry the program id, so user space can keep
 * only the events of its own programs (these tracepoints see the whole machine).
 */
#include <uapi/linux/bpf.h>

struct event_key {
    u32 kind;        /* 1 = exception, 2 = redirect error */
    u32 prog_id;
    u32 code;        /* the action (exception) or errno (redirect error) */
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
