"""``packetlab sketch``: count the flows on an interface in XDP — exactly, in a Count-Min Sketch, or adaptively.

    packetlab sketch run --netns NS --dev IF [--mode auto|exact|sketch] [--interval S] [--top K]
                         [--duration S] [--metrics-port PORT] [--depth D] [--width-log2 L] [--flows N]

``run`` loads bpf/11a-sketch.c on IF in NS (native XDP), and every interval ends an epoch: it prints
the interval's heaviest flows (exact counts, or the sketch's estimates of its heavy-hitter
candidates) and, in ``auto`` mode, lets the controller switch between exact and sketch with
hysteresis. ``--metrics-port`` serves Prometheus text on http://127.0.0.1:PORT/metrics inside NS.
The program is detached when the command ends (Ctrl-C, --duration). The root namespace is refused
unless --allow-host.

Exit codes: the convention of every packetlab command (`packetlab.errors.EXIT_CODES`):
0 ok, 2 usage, 3 the system refused, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import time

from packetlab.ebpf.loader import XdpAttachment, acquire
from packetlab.errors import UsageError, document_exit_codes, run_cli
from packetlab.show.prometheus import serve_metrics
from packetlab.show.tables import format_table
from packetlab.tools.sketch import metrics
from packetlab.tools.sketch.controller import Controller, Hysteresis
from packetlab.tools.sketch.layout import MODE_NAMES, MODES, SOURCE, STATS, Geometry
from packetlab.tools.sketch.telemetry import Snapshot, Telemetry
from packetlab.topo.names import check_namespace


def interval_report(ctl: Controller, snaps: list[Snapshot], top: int) -> str:
    """One interval: its load, the switch if there was one, and the top flows."""
    tele, last = ctl.telemetry, snaps[0]
    head = (
        f"epoch {last.epoch} [{MODE_NAMES[last.mode]}] {last.stats['packets']} packets in {last.seconds:.1f} s, "
        f"{ctl.last_rate:,.0f} flows/s, exact map fill {ctl.last_fill:.0%}"
    )
    if last.stats["sketch"]:
        head += f", sketch bound +{tele.geometry.epsilon * last.stats['sketch']:.0f} packets (p <= {tele.geometry.delta:.3f})"
    if len(snaps) > 1:
        gap = snaps[1]
        head += (
            f"\n  -> switched to {tele.mode_name} (epoch {tele.epoch}; epoch {gap.epoch}, while the snapshot was read, "
            f"counted {gap.stats['packets']} packets in {gap.seconds:.2f} s)"
        )
    rows = [(str(f), how, n) for f, n, how in last.top(top)]
    return head + "\n" + (format_table(["flow", "counted", "packets"], rows) if rows else "  (no flows)")


def cmd_run(args: argparse.Namespace) -> int:
    if args.netns is None and not args.allow_host:
        raise UsageError(
            "no --netns given: refusing to touch the root network namespace",
            cause="the telemetry program would attach XDP to this machine's own interface",
            fix="pass --netns NAME (a lab namespace), or --allow-host if you really mean the host",
        )
    if args.netns is not None:
        check_namespace(args.netns, allow_host=args.allow_host, tool="the telemetry sketch")
    try:
        geometry = Geometry(depth=args.depth, width_log2=args.width_log2, candidates=args.candidates, flows=args.flows)
    except ValueError as exc:
        raise UsageError(f"invalid sketch size: {exc}", fix="see `packetlab sketch run --help`") from None
    program = acquire(SOURCE, cflags=geometry.cflags())
    attachment = XdpAttachment(program, args.netns, args.dev, args.xdp_mode, pooled=False)
    server = None
    try:
        tele = Telemetry(attachment, geometry)
        fixed = None if args.mode == "auto" else MODES[args.mode]
        ctl = Controller(
            tele,
            Hysteresis(high_rate=args.high_rate, low_rate=args.low_rate, high_fill=args.high_fill, hold=args.hold),
            fixed,
        )
        tele.swap(fixed if fixed is not None else tele.mode)
        totals = dict.fromkeys(STATS, 0)
        last: list[Snapshot] = []
        if args.metrics_port:
            server = serve_metrics(
                lambda: metrics.render(ctl, totals, last[-1] if last else None, args.top),
                port=args.metrics_port,
                namespace=args.netns,
                name="sketch-metrics",
            )
            print(f"metrics: http://127.0.0.1:{args.metrics_port}/metrics in {args.netns or 'the host'}")
        print(f"counting on {args.netns or 'the host'}:{args.dev}, mode {args.mode}, every {args.interval:g} s")
        end = time.monotonic() + args.duration if args.duration else None
        while end is None or time.monotonic() < end:
            time.sleep(args.interval if end is None else max(0.0, min(args.interval, end - time.monotonic())))
            snaps = ctl.tick()
            for s in snaps:
                for k in STATS:
                    totals[k] += s.stats[k]
            last[:] = [snaps[0]]
            print(interval_report(ctl, snaps, args.top), flush=True)
        return 0
    finally:
        if server is not None:
            server.shutdown()
        with contextlib.suppress(Exception):
            attachment.detach()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="packetlab sketch", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="count flows on an interface and print the top flows every interval")
    r.add_argument("--netns", help="network namespace of the interface (a lab namespace)")
    r.add_argument("--dev", required=True, help="the interface to count on")
    r.add_argument("--allow-host", action="store_true", help="allow the root namespace or a non-lab namespace")
    r.add_argument("--mode", choices=("auto", "exact", "sketch"), default="auto")
    r.add_argument("--xdp-mode", default="native", help="native (default) or generic")
    r.add_argument("--interval", type=float, default=1.0, help="seconds per epoch (default 1)")
    r.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (default: Ctrl-C)")
    r.add_argument("--top", type=int, default=10)
    r.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port in the namespace")
    r.add_argument("--depth", type=int, default=4, help="sketch rows d (delta = e^-d)")
    r.add_argument("--width-log2", type=int, default=13, help="log2 of the counters per row (epsilon = e / 2^L)")
    r.add_argument("--candidates", type=int, default=512, help="heavy-hitter candidate slots")
    r.add_argument("--flows", type=int, default=16384, help="exact flow map capacity")
    r.add_argument("--high-rate", type=float, default=10_000.0, help="auto: new flows/s that switch to the sketch")
    r.add_argument("--low-rate", type=float, default=2_000.0, help="auto: flows/s under which it may switch back")
    r.add_argument("--high-fill", type=float, default=0.9, help="auto: exact map fill that switches to the sketch")
    r.add_argument("--hold", type=int, default=3, help="auto: quiet intervals before switching back")
    r.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = document_exit_codes(build_parser()).parse_args(argv)
    return run_cli("packetlab sketch", lambda: args.func(args))
