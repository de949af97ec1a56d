/* 06-printk.c — printf debugging for eBPF: bpf_trace_printk and the trace pipe.
 *
 * bpf_trace_printk (libbpf's bpf_printk macro calls the same helper) formats
 * a line into the kernel's trace buffer, where `cat /sys/kernel/tracing/trace_pipe`
 * (or `bpftool prog tracelog`) shows it, prefixed with the task, its pid, the
 * CPU and a timestamp. At most three arguments, a small format set (%d %u %x
 * %s %pI4 ...), one shared buffer for the whole machine, and slow: a debugging
 * tool, never a data path. Maps and ring buffers are how programs report.
 *
 * Every line starts with "packetlab-<tag>": the tag is a number user space writes
 * into `tag`, so the lab finds its own lines among everyone else's. Only the
 * process whose pid is in `target_tgid` is traced.
 */
#include <uapi/linux/ptrace.h>

BPF_ARRAY(target_tgid, u32, 1);    /* written by user space */
BPF_ARRAY(tag, u32, 1);            /* written by user space */

TRACEPOINT_PROBE(syscalls, sys_enter_sendto)
{
    u32 zero = 0;
    u32 *tgid = target_tgid.lookup(&zero);
    if (!tgid || *tgid != (u32)(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u32 *t = tag.lookup(&zero);
    bpf_trace_printk("packetlab-%u sendto fd=%d len=%d\n", t ? *t : 0, (int)args->fd, (int)args->len);
    return 0;
}
