"""`packetlab firewall ...`: apply, status, remove, check, metrics.

    packetlab firewall check  RULES.yaml                       # validate only, touches nothing
    packetlab firewall apply  RULES.yaml --netns NS --dev IF   # install, or swap rules atomically
    packetlab firewall status [--netns NS --dev IF] [--json]
    packetlab firewall metrics [--netns NS --dev IF] [--textfile PATH | --listen 127.0.0.1:9108]
    packetlab firewall remove --netns NS --dev IF

Exit codes: the convention of every packetlab command (`packetlab.errors.EXIT_CODES`):
0 ok, 1 invalid rule file (nothing applied), 2 usage, 3 the system refused, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from packetlab.errors import document_exit_codes, run_cli
from packetlab.tools.firewall.rulefile import load_rules


def _target(args: argparse.Namespace):
    from packetlab.tools.firewall.pinned import Target

    return Target(args.netns, args.dev)


def _cmd_check(args: argparse.Namespace) -> int:
    from packetlab.tools.firewall.compiler import compile_rules

    rs = load_rules(args.rules)
    compiled = compile_rules(rs)
    print(
        f"{args.rules}: valid — {len(rs.rules)} rules, default {rs.default}, fragments {rs.fragments}; "
        f"{compiled.n_entries} entries, {compiled.n_classes} classes, {compiled.n_pool_words} bitmap words"
    )
    for w in rs.warnings:
        print(f"warning: {w}")
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    from packetlab.tools.firewall import pinned

    rs = load_rules(args.rules)  # invalid rules stop here, before the kernel
    target = _target(args)
    fw, result, created = pinned.apply(rs, target, mode=args.mode, allow_host=args.allow_host)
    try:
        verb = "installed the firewall on" if created else "swapped new rules into the firewall on"
        print(f"{verb} {target}: {result}")
        for w in result.warnings:
            print(f"warning: {w}")
    finally:
        fw.close()
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from packetlab.tools.firewall import pinned

    for line in pinned.gc():  # forget firewalls whose namespace is gone
        print(line)
    targets = [_target(args)] if args.dev else pinned.installed()
    if not targets:
        print("no firewall installed (packetlab firewall apply RULES.yaml --netns NS --dev IF)")
        return 0
    out = []
    detached = 0
    for target in targets:
        fw, state = pinned.open_installed(target)
        try:
            st = fw.status()
            attached = pinned.attached_prog_id(target)
            ok = attached == fw.prog_id()
        finally:
            fw.close()
        detached += not ok
        if args.json:
            out.append({**asdict(st), "attached": ok, "mode": state.get("mode")})
        else:
            print(st.table())
            if not ok:
                print(f"warning: the firewall is not attached to {target} any more (re-apply to attach it)")
            print()
    if args.json:
        print(json.dumps(out, indent=1))
    return 1 if detached else 0  # the check found a problem


def _render_metrics(targets) -> str:
    from packetlab.tools.firewall import pinned
    from packetlab.tools.firewall.stats import prometheus_text

    pairs = []
    for target in targets:
        fw, _ = pinned.open_installed(target)
        try:
            pairs.append((fw.status(), {"netns": target.netns or "host", "dev": target.dev}))
        finally:
            fw.close()
    return prometheus_text(pairs)


def _cmd_metrics(args: argparse.Namespace) -> int:
    from packetlab.show.prometheus import serve_metrics
    from packetlab.tools.firewall import pinned
    from packetlab.tools.firewall.stats import write_textfile

    def targets():
        return [_target(args)] if args.dev else pinned.installed()

    if args.listen:
        host, _, port = args.listen.rpartition(":")
        server = serve_metrics(lambda: _render_metrics(targets()), host or "127.0.0.1", int(port))
        print(f"serving http://{host or '127.0.0.1'}:{port}/metrics (Ctrl-C to stop)", file=sys.stderr)
        try:
            while True:
                time.sleep(3600)
        finally:  # Ctrl-C ends it: exit 130, like every interrupted packetlab command
            server.shutdown()
    text = _render_metrics(targets())
    if args.textfile:
        write_textfile(args.textfile, text)
        print(f"wrote {args.textfile}")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    from packetlab.tools.firewall import pinned

    for line in pinned.remove(_target(args)):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="packetlab firewall",
        description="The module 08 XDP firewall: rules from a YAML file, applied atomically, inside a lab namespace.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def where(p: argparse.ArgumentParser, required_dev: bool) -> None:
        p.add_argument("--netns", help="the lab namespace (see `ip netns list`); leave out only with --allow-host")
        p.add_argument("--dev", required=required_dev, help="the interface inside that namespace, e.g. eth0")

    p = sub.add_parser("check", help="validate a rule file (no kernel involved)")
    p.add_argument("rules")
    p.set_defaults(func=_cmd_check)
    p = sub.add_parser("apply", help="install the firewall, or atomically swap in new rules")
    p.add_argument("rules")
    where(p, True)
    p.add_argument("--mode", choices=("native", "generic"), default="native", help="XDP attach mode (default native)")
    p.add_argument(
        "--allow-host",
        action="store_true",
        help="allow attaching outside a packetlab lab namespace (including the host itself)",
    )
    p.set_defaults(func=_cmd_apply)
    p = sub.add_parser("status", help="rules with packet/byte counters (exit 1 if a firewall is no longer attached)")
    where(p, False)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_status)
    p = sub.add_parser("metrics", help="counters in Prometheus text format (stdout, a textfile, or an HTTP endpoint)")
    where(p, False)
    p.add_argument("--textfile", help="write for node_exporter's textfile collector (atomically)")
    p.add_argument("--listen", help="serve GET /metrics on HOST:PORT until Ctrl-C")
    p.set_defaults(func=_cmd_metrics)
    p = sub.add_parser("remove", help="detach the firewall and unpin it")
    where(p, True)
    p.set_defaults(func=_cmd_remove)
    return document_exit_codes(parser)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run_cli("packetlab firewall", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
