"""``packetlab dhcp``: run the gateway's DHCP server, and look at its leases and its fast path.

    packetlab dhcp validate POOLS.yaml
    packetlab dhcp serve    --config POOLS.yaml --netns NS --dev IF [--store FILE] [--mode native|generic]
                            [--metrics-port PORT]
    packetlab dhcp leases   --netns NS --dev IF [--store FILE] [--json]
    packetlab dhcp status   --netns NS --dev IF [--json]
    packetlab dhcp remove   --netns NS --dev IF

``serve`` validates the pools file before anything starts, installs the XDP fast
path (or reuses the pinned one still attached), warms its cache from the lease
store and answers until Ctrl-C or SIGTERM; the fast path keeps answering cached
subscribers after it stops, until ``remove``. Logs are JSON lines on stderr.
The root namespace is refused unless --allow-host.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path

from packetlab.errors import PacketlabError, UsageError, document_exit_codes, run_cli
from packetlab.show.tables import format_table
from packetlab.tools.dhcp import config as dhcp_config
from packetlab.tools.dhcp import fastpath
from packetlab.tools.dhcp.daemon import Daemon, default_store, state_file
from packetlab.tools.dhcp.store import LeaseStore
from packetlab.topo.names import check_namespace


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--netns", help="the gateway's network namespace (a lab namespace)")
    p.add_argument("--dev", required=True, help="the subscriber-facing interface")
    p.add_argument("--allow-host", action="store_true", help="allow the root namespace or a non-lab namespace")


def _check_ns(args: argparse.Namespace) -> str | None:
    if args.netns is None and not args.allow_host:
        raise UsageError(
            "no --netns given: refusing to serve DHCP in the root network namespace",
            cause="a DHCP server on this machine's own interfaces would hand out addresses on your network",
            fix="pass --netns NAME (a lab namespace), or --allow-host if you really mean the host",
        )
    if args.netns is not None:
        check_namespace(args.netns, allow_host=args.allow_host, tool="the DHCP server")
    return args.netns


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = dhcp_config.load(args.config)
    for p in cfg.pools:
        print(f"ok: pool {p.name} vlan={p.vlan} {p.first}-{p.last} ({p.size} addresses) lease={p.lease_time}s")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = dhcp_config.load(args.config)
    ns = _check_ns(args)
    port = args.metrics_port or None
    daemon = Daemon(cfg, ns, args.dev, store_path=args.store, mode=args.mode, metrics_port=port)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop_event.set())
    daemon.start()
    prog = daemon.fast.prog_id() if daemon.fast else None
    print(f"ready: serving DHCP on {ns or 'host'}:{args.dev}, fast path = XDP program {prog}", flush=True)
    try:
        daemon.serve_forever()
    finally:
        daemon.close()
    return 0


def _store(args: argparse.Namespace) -> LeaseStore:
    path = Path(args.store) if args.store else default_store(args.netns, args.dev)
    if not path.exists():
        raise PacketlabError(f"no lease store at {path}", fix="start the server first, or pass --store FILE")
    return LeaseStore(path)


def cmd_leases(args: argparse.Namespace) -> int:
    store = _store(args)
    now = time.time()
    rows = store.all()
    store.close()
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
        return 0
    table = [(r.mac, r.vlan, r.ip, r.pool, r.state, f"{max(0, r.expires - now):.0f}s", r.hostname or "") for r in rows]
    print(format_table(["mac", "vlan", "address", "pool", "state", "expires in", "hostname"], table))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    directory = fastpath.pin_dir(args.netns, args.dev)
    fp = fastpath.FastPath.open_pinned(directory)
    try:
        stats, cached = fp.stats(), len(fp.leases())
        prog = fp.prog_id()
    finally:
        fp.close()
    try:
        state = json.loads(state_file(args.netns, args.dev).read_text())
    except (OSError, ValueError):
        state = None
    running = state is not None and _alive(state.get("pid"))
    ready = readiness(args.netns, state if running else None)
    seen = stats.get("dhcp", 0)
    hit = (stats.get("fast_offer", 0) + stats.get("fast_ack", 0)) / seen if seen else 0.0
    if args.json:
        doc = {"prog_id": prog, "daemon": state if running else None, "ready": ready, "cached": cached, "stats": stats}
        print(json.dumps(doc))
        return 0
    print(f"fast path: XDP program {prog} pinned at {directory}, {cached} cached leases, hit rate {hit:.1%}")
    print("slow path: " + (f"pid {state['pid']}, store {state['store']}" if running and state else "not running"))
    print("readiness: " + ("ready" if ready.get("ready") else "NOT READY: " + "; ".join(ready.get("not_ready", []))))
    print(format_table(["counter", "value"], sorted(stats.items())))
    return 0


def readiness(netns: str | None, state: dict | None, timeout: float = 2.0) -> dict:
    """The running daemon's /readyz answer (its JSON body, 200 or 503), or why there is none."""
    import contextlib
    import urllib.error
    import urllib.request

    from packetlab.topo import netns as _netns

    if state is None:
        return {"ready": False, "not_ready": ["daemon: not running"]}
    port = state.get("metrics_port")
    if not port:
        return {"ready": None, "not_ready": ["daemon: started with --metrics-port 0, no /readyz to ask"]}
    url = f"http://127.0.0.1:{int(port)}/readyz"
    try:
        with _netns.entered(netns) if netns else contextlib.nullcontext():
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    return dict(json.loads(resp.read()))
            except urllib.error.HTTPError as exc:  # 503 carries the same JSON body
                return dict(json.loads(exc.read()))
    except (OSError, ValueError) as exc:
        return {"ready": False, "not_ready": [f"daemon: {url} did not answer ({exc})"]}


def _alive(pid: object) -> bool:
    import os

    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def cmd_remove(args: argparse.Namespace) -> int:
    done = fastpath.remove(args.netns, args.dev)
    print("\n".join(done) if done else "no fast path installed there")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="packetlab dhcp", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("validate", help="check a pools file")
    p.add_argument("config")
    p.set_defaults(fn=cmd_validate)
    p = sub.add_parser("serve", help="answer DHCP (slow path) and keep the XDP fast path's cache")
    p.add_argument("--config", required=True, help="pools YAML")
    _target(p)
    p.add_argument("--store", help="SQLite lease store (default /var/lib/packetlab/dhcp/<netns>-<dev>.sqlite)")
    p.add_argument("--mode", choices=("native", "generic"), default="native", help="XDP mode")
    p.add_argument("--metrics-port", type=int, default=9167, help="Prometheus /metrics port in the namespace (0: off)")
    p.set_defaults(fn=cmd_serve)
    p = sub.add_parser("leases", help="the lease store as a table")
    _target(p)
    p.add_argument("--store", help="SQLite lease store")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_leases)
    p = sub.add_parser("status", help="the fast path's counters and the daemon")
    _target(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("remove", help="detach and unpin the fast path")
    _target(p)
    p.set_defaults(fn=cmd_remove)
    return document_exit_codes(parser)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli("packetlab dhcp", lambda: args.fn(args))
