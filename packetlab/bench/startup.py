"""``python -m packetlab.bench startup``: how long a lab takes to come up and go away.

Measures, over repeated runs, the wall time to build two hosts on a bridge
(three namespaces, two veth pairs, addresses), optionally attach an XDP
program to h2, check connectivity with one ping, and tear it all down — with
and without XDP, interleaved so both see the same machine load. The first
XDP run includes bcc's compile; it is reported separately (later runs reuse
the compiled program from the per-process pool, with its maps cleared).
"""

from __future__ import annotations

import argparse
import sys
import time

from packetlab.bench import median
from packetlab.ebpf.loader import LoadedProgram
from packetlab.show.tables import format_table

PROGRAM = "bpf/00-xdp-pass.c"


def one_run(with_xdp: bool) -> float:
    from packetlab.topo.lab import Lab

    start = time.perf_counter()
    with Lab("bstart") as lab:
        h1, h2, sw = lab.host("h1"), lab.host("h2"), lab.switch("sw")
        lab.link(h1, sw, ip="10.77.0.1/24")
        lab.link(h2, sw, ip="10.77.0.2/24")
        if with_xdp:
            h2.attach_xdp(PROGRAM, "eth0")
        if not h1.ping("10.77.0.2", timeout=2).ok:
            raise RuntimeError("the benchmark topology did not pass traffic")
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m packetlab.bench startup", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="measured runs per variant (default 15)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    LoadedProgram(PROGRAM).close()
    compile_s = time.perf_counter() - t0
    cold_xdp = one_run(True)  # includes a compile: the pool is empty
    plain, xdp = [], []
    for i in range(args.runs):
        print(f"  run {i + 1}/{args.runs}", end="\r", file=sys.stderr, flush=True)
        plain.append(one_run(False))
        xdp.append(one_run(True))
    print(file=sys.stderr)
    rows = [
        ("2 hosts + bridge, ping, teardown", median(plain) * 1000, min(plain) * 1000, max(plain) * 1000),
        ("... + XDP attached (compiled program reused)", median(xdp) * 1000, min(xdp) * 1000, max(xdp) * 1000),
        ("... + XDP, first run (includes bcc compile)", cold_xdp * 1000, cold_xdp * 1000, cold_xdp * 1000),
        ("bcc compile + load of " + PROGRAM + " alone", compile_s * 1000, compile_s * 1000, compile_s * 1000),
    ]
    print(format_table(["lab bring-up and teardown", "median ms", "min ms", "max ms"], rows))
    print(
        f"\nruns: {args.runs} per variant, interleaved; XDP adds {median(xdp) / median(plain):.2f}x "
        f"to the median; target: median with XDP under 500 ms -> "
        f"{'met' if median(xdp) < 0.5 else 'NOT met'}"
    )
    return 0
