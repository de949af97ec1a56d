"""``packetlab lb``: install, inspect and remove the XDP load balancer from the command line.

    packetlab lb validate CONFIG.yaml
    packetlab lb apply    CONFIG.yaml --netns NS --dev IF [--dev IF2] [--probe]
    packetlab lb status   --netns NS --dev IF [--conns] [--prometheus | --json]
    packetlab lb health   --netns NS --dev IF [--once] [--interval S] [--metrics-port PORT]
    packetlab lb remove   --netns NS --dev IF
    packetlab lb list

``apply`` validates the whole file first and changes nothing if any field is
wrong. The program and its maps are pinned under
/sys/fs/bpf/packetlab/lb/<netns>-<dev>/ (``<dev>`` = the first --dev), so they
keep balancing after the command exits; applying again to the same instance
updates it in place (established flows keep their backends). The root
namespace is refused unless --allow-host.

Exit codes: the convention of every packetlab command (`packetlab.errors.EXIT_CODES`):
0 ok, 1 invalid config (nothing applied) or a stale instance, 2 usage, 3 the
system refused, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time

from packetlab.errors import UsageError, document_exit_codes, run_cli
from packetlab.show.prometheus import serve_metrics
from packetlab.tools.lb import maglev
from packetlab.tools.lb.balancer import LoadBalancer
from packetlab.tools.lb.config import VIP, imbalance_bound, load, vip_weights, warnings
from packetlab.tools.lb.instance import STATE_DIR, installed, instance_lock, instance_name, record_path
from packetlab.topo.names import check_namespace


def _devs(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [d for d in v.split(",") if d]
    return out


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--netns", help="network namespace of the load balancer (a name from `ip netns list`)")
    p.add_argument(
        "--dev",
        action="append",
        required=True,
        help="interface(s) where client traffic and replies arrive; repeat or comma-separate",
    )
    p.add_argument(
        "--allow-host", action="store_true", help="allow the root namespace (no --netns), or a namespace no lab created"
    )


def _check_ns(args: argparse.Namespace) -> str | None:
    if args.netns is None and not args.allow_host:
        raise UsageError(
            "no --netns given: refusing to touch the root network namespace",
            cause="the load balancer would attach XDP to this machine's own interfaces",
            fix="pass --netns NAME (a lab namespace), or --allow-host if you really mean the host",
        )
    if args.netns is not None:  # before the instance lock makes a file
        check_namespace(args.netns, allow_host=args.allow_host, tool="the load balancer")
    return args.netns


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    for v in cfg.vips:
        print(
            f"ok: VIP {v.label} {v.key} mode={v.mode} table={v.table_size} backends="
            + ", ".join(f"{b.label}(w={b.weight})" for b in v.backends)
        )
        imbalance = table_imbalance(v)
        if imbalance is not None:
            print(
                f"    balance: each backend's share of new flows is within {imbalance:.2%} of its weight's share "
                f"(this table; the size rule allows at most {imbalance_bound(v.table_size, vip_weights(v)):.2%})"
            )
    if not cfg.vips:
        print("ok: no VIPs (applying it removes every VIP)")
    for w in warnings(cfg):
        print(f"WARNING: {w}")
    return 0


def table_imbalance(v: VIP) -> float | None:
    """The largest relative error of a backend's share of `v`'s Maglev table against its weight's share."""
    live = [b for b in v.backends if b.drain is not True and b.weight > 0]
    if not live:
        return None
    names = [f"{b.address}:{v.backend_port(b)}" for b in live]
    table = maglev.build_table(names, [b.weight for b in live], v.table_size)
    total = sum(b.weight for b in live)
    return max(abs(share / (b.weight / total) - 1) for share, b in zip(maglev.shares(table, len(live)), live))


def cmd_apply(args: argparse.Namespace) -> int:
    ns = _check_ns(args)
    devs = _devs(args.dev)
    cfg = load(args.config)  # validate before touching anything
    name = instance_name(ns, devs[0])
    with instance_lock(name):
        lb: LoadBalancer | None = None
        if record_path(name).exists():
            lb = LoadBalancer.open(ns, devs[0])
            if lb.stale:
                lb.close()
                lb = None
        created = lb is None
        if lb is None:
            lb = LoadBalancer(
                ns, devs, xdp_mode=args.xdp_mode, redirect=not args.no_redirect, pin=True, allow_host=args.allow_host
            )
        try:
            for d in devs:
                lb.attach(d)
            lb.apply(cfg, probe_first=args.probe)
        except BaseException:
            if created:
                lb.close()  # nothing half-applied
            raise
        for w in warnings(cfg):
            print(f"WARNING: {w}", file=sys.stderr)
        verb = "installed" if created else "updated"
        print(
            f"{verb} {name}: {len(cfg.vips)} VIP(s) on {ns or 'root'}:{','.join(lb.state.devs)} "
            f"(pinned at {lb.pin_dir})"
        )
        for v in cfg.vips:
            print(
                f"  {v.label} {v.key} {v.mode}: "
                + ", ".join(
                    f"{b.label}{'' if lb.health.get(f'{b.address}:{v.backend_port(b)}') is None or lb.health[f'{b.address}:{v.backend_port(b)}'].up else ' (DOWN)'}"
                    for b in v.backends
                )
            )
        return 0


def cmd_status(args: argparse.Namespace) -> int:
    lb = LoadBalancer.open(args.netns, _devs(args.dev)[0])
    if lb.stale:
        print(f"{lb.name} is stale: {lb.stale_reason}; remove it with `packetlab lb remove`", file=sys.stderr)
        return 1
    if args.prometheus:
        sys.stdout.write(lb.prometheus())
    elif args.json:
        st = lb.stats()
        out = {
            "name": lb.name,
            "namespace": lb.namespace,
            "devs": lb.state.devs,
            "vips": [
                {
                    "vip": vs.vip.key,
                    "name": vs.vip.name,
                    "mode": vs.vip.mode,
                    "counters": vs.counters.__dict__,
                    "backends": [
                        {
                            "backend": b.label,
                            "address": b.address,
                            "port": b.port,
                            "weight": b.weight,
                            "state": b.state,
                            "table_share": b.in_table,
                            "counters": b.counters.__dict__,
                        }
                        for b in vs.backends
                    ],
                }
                for vs in st.vips
            ],
            "events": st.events,
        }
        if args.conns:
            out["connections"] = [c.__dict__ for c in lb.connections()]
        print(json.dumps(out, indent=1))
    else:
        print(lb.status(conns=args.conns, limit=args.limit))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    name = instance_name(args.netns, _devs(args.dev)[0])
    with instance_lock(name):
        lb = LoadBalancer.open(args.netns, _devs(args.dev)[0])
        devs = list(lb.state.devs)
        lb.close()
    with contextlib.suppress(FileNotFoundError):
        (STATE_DIR / f".{name}.lock").unlink()
    print(f"removed {name}: detached from {','.join(devs) or 'nothing'}, unpinned")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = installed()
    if not rows:
        print("no load balancers installed")
        return 0
    for r in rows:
        print(
            f"{r['name']}: netns {r['namespace'] or 'root'} devs {','.join(r['devs'])} "
            f"{r['vips']} VIP(s){'  STALE (namespace gone): remove it' if r['stale'] else ''}"
        )
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Probe backends (once, or forever), drain the failed and restore the recovered."""
    dev = _devs(args.dev)[0]
    name = instance_name(args.netns, dev)
    lb = LoadBalancer.open(args.netns, dev)
    server = None
    if args.metrics_port:
        server = serve_metrics(
            lambda: lb.prometheus(), "127.0.0.1", args.metrics_port, namespace=args.netns, name="lb-metrics"
        )
        print(f"metrics: http://127.0.0.1:{args.metrics_port}/metrics in namespace {args.netns or 'root'}", flush=True)
    state_file = record_path(name)
    seen = state_file.stat().st_mtime_ns
    every = args.interval or min([v.health.interval for v in lb.config.vips] or [1.0])
    try:
        while True:
            with instance_lock(name):
                mtime = state_file.stat().st_mtime_ns if state_file.exists() else None
                if mtime is None:
                    print(f"{name} was removed; stopping", file=sys.stderr)
                    return 0
                if mtime != seen:  # someone applied a new config: reload it
                    old_health = lb.health
                    lb = LoadBalancer.open(args.netns, dev)
                    lb.health.update({k: h for k, h in old_health.items()})
                changes = lb.check_health(immediate=args.once)
                lb.expire_connections()
                seen = state_file.stat().st_mtime_ns
            for c in changes:
                print(f"{time.strftime('%H:%M:%S')} {c}", flush=True)
            if args.once:
                if not changes:
                    downs = [k for k, h in lb.health.items() if not h.up]
                    print("all backends up" if not downs else f"down: {', '.join(downs)}")
                return 0
            time.sleep(every)
    finally:  # Ctrl-C ends it: exit 130, like every interrupted packetlab command
        if server is not None:
            server.shutdown()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="packetlab lb", description="the module 09 XDP L4 load balancer")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("validate", help="check a config file without installing anything")
    s.add_argument("config")
    s.set_defaults(func=cmd_validate)
    s = sub.add_parser("apply", help="install or update the load balancer from a YAML config")
    s.add_argument("config")
    _target(s)
    s.add_argument("--xdp-mode", choices=["native", "generic"], default="native")
    s.add_argument(
        "--no-redirect",
        action="store_true",
        help="never XDP_REDIRECT between interfaces (let the kernel forward instead)",
    )
    s.add_argument("--probe", action="store_true", help="health-check every backend once before installing")
    s.set_defaults(func=cmd_apply)
    s = sub.add_parser("status", help="VIPs, backends, counters (and the connection table); exit 1 if stale")
    _target(s)
    s.add_argument("--conns", action="store_true", help="also show the connection table")
    s.add_argument("--limit", type=int, default=40, help="show at most this many flows (0: all)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--prometheus", action="store_true", help="Prometheus text format")
    g.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("health", help="run health checks: drain failed backends, restore recovered ones")
    _target(s)
    s.add_argument("--once", action="store_true", help="one probe round, then exit")
    s.add_argument("--interval", type=float, help="seconds between rounds (default: from the config)")
    s.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on 127.0.0.1:PORT in the LB namespace")
    s.set_defaults(func=cmd_health)
    s = sub.add_parser("remove", help="detach and unpin the load balancer")
    _target(s)
    s.set_defaults(func=cmd_remove)
    s = sub.add_parser("list", help="installed (pinned) load balancers")
    s.set_defaults(func=cmd_list)
    return document_exit_codes(p)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run_cli("packetlab lb", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
