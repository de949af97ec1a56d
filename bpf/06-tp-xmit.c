/* 06-tp-xmit.c — first bcc programs on tracepoints: watch one process send.
 *
 * Two tracepoint programs in one file; bcc attaches every TRACEPOINT_PROBE
 * automatically when it loads the file:
 *   syscalls:sys_enter_sendto — counts sendto() system calls;
 *   net:net_dev_xmit          — fires when a device has transmitted a frame;
 *                               each one becomes an event in a ring buffer.
 * Both fire for every process on the machine, so both return early unless the
 * current process is the one whose PID user space wrote into `target_tgid`.
 * The UDP sends of the lab run in the notebook's own process, and on a veth
 * the whole transmit path runs synchronously inside sendto(), so the events
 * are attributed to that process.
 *
 * Tracepoints are stable, documented hook points (see
 * /sys/kernel/tracing/events/<category>/<name>/format for their fields);
 * bcc turns that format into the `args` struct used below.
 */
#include <uapi/linux/ptrace.h>

struct xmit_event {
    u64 ts_ns;          /* bpf_ktime_get_ns(): nanoseconds since boot */
    u32 len;            /* frame length handed to the driver */
    s32 rc;             /* driver's return code (0 = NETDEV_TX_OK) */
    u32 cpu;
    char dev[16];       /* device name, e.g. "eth0" */
};

BPF_ARRAY(target_tgid, u32, 1);        /* written by user space */
BPF_ARRAY(sendto_calls, u64, 1);
BPF_RINGBUF_OUTPUT(xmit_events, 8);    /* 8 pages = 32 KiB, shared by all CPUs */

static __always_inline int watched(void)
{
    u32 zero = 0;
    u32 *tgid = target_tgid.lookup(&zero);
    return tgid && *tgid == (u32)(bpf_get_current_pid_tgid() >> 32);
}

TRACEPOINT_PROBE(syscalls, sys_enter_sendto)
{
    if (!watched())
        return 0;
    sendto_calls.increment(0);
    return 0;
}

TRACEPOINT_PROBE(net, net_dev_xmit)
{
    if (!watched())
        return 0;
    struct xmit_event *ev = xmit_events.ringbuf_reserve(sizeof(struct xmit_event));
    if (!ev)
        return 0;       /* ring full: the event is dropped, never blocks the kernel */
    ev->ts_ns = bpf_ktime_get_ns();
    ev->len = args->len;
    ev->rc = args->rc;
    ev->cpu = bpf_get_smp_processor_id();
    TP_DATA_LOC_READ_STR(ev->dev, name, sizeof(ev->dev));
    xmit_events.ringbuf_submit(ev, 0);
    return 0;
}
