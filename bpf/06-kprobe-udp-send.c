/* 06-kprobe-udp-send.c — a kprobe: hook a kernel function that has no tracepoint.
 *
 * count_udp_sendmsg is attached to the entry of udp_sendmsg(), the function
 * every IPv4 UDP send goes through (TracepointProgram.attach_kprobe). Stock
 * distribution kernels (Debian, Ubuntu, Fedora) are built with CONFIG_KPROBES
 * and CONFIG_KPROBE_EVENTS and attach it; a kernel built without them (the
 * course's CI machine) loads the program but cannot attach it, so the lab
 * attaches only when packetlab.ebpf.tracepoints.kprobes_available() says yes.
 *
 * A function is not a stable interface the way a tracepoint is: it can be
 * renamed, inlined or change its arguments between releases. udp_sendmsg has
 * kept its name for many years, and this program reads none of its arguments.
 */
#include <uapi/linux/ptrace.h>

BPF_ARRAY(target_tgid, u32, 1);         /* written by user space */
BPF_ARRAY(udp_sendmsg_calls, u64, 1);

int count_udp_sendmsg(struct pt_regs *ctx)
{
    u32 zero = 0;
    u32 *tgid = target_tgid.lookup(&zero);
    if (!tgid || *tgid != (u32)(bpf_get_current_pid_tgid() >> 32))
        return 0;
    udp_sendmsg_calls.increment(0);
    return 0;
}
