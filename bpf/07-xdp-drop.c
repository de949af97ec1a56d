/* 07-xdp-drop.c — the floor: drop every frame without reading a byte of it.
 *
 * Module 07 measures every other program against this one. Whatever a program
 * costs above XDP_DROP is the price of its parsing, map lookups and rewrites;
 * what XDP_DROP itself costs is the price of running any program at all on the
 * hook (on veth, mostly the work the kernel does around the program).
 */
#include <uapi/linux/bpf.h>

int xdp_drop(struct xdp_md *ctx)
{
    return XDP_DROP;
}
