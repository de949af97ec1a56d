"""The `packetlab` command: doctor, clean, progress, version — and the milestone tools.

Subcommands of later modules (``firewall``, ``lb``, ``cni``...) live in their own
modules and are registered in `TOOLS`; each exposes ``main(argv) -> int``.

Every packetlab command ends with the same exit codes (`packetlab.errors.EXIT_CODES`,
implemented once in `packetlab.errors.run_cli`): 0 ok, 1 input refused or a check
found a problem (``doctor``: a requirement is missing), 2 usage, 3 the system
refused, 130 interrupted. (The CNI plugin, ``packetlab-cni``, speaks the CNI
specification's error protocol instead: see `packetlab.tools.cni.plugin`.)
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from packetlab import __version__
from packetlab.errors import document_exit_codes, run_cli

# subcommand -> (module with main(argv), one-line help); imported only when used
TOOLS: dict[str, tuple[str, str]] = {
    "firewall": ("packetlab.tools.firewall.cli", "the module 08 XDP firewall (apply, status, remove)"),
    "lb": ("packetlab.tools.lb.cli", "the module 09 XDP load balancer (apply, status, remove)"),
    "sketch": ("packetlab.tools.sketch.cli", "the module 11a flow telemetry: exact, sketch or adaptive (run)"),
    "analyze": ("packetlab.tools.analyzer.cli", "the module 11b packet analyzer (live, pcap, query, export)"),
    "dhcp": ("packetlab.tools.dhcp.cli", "the module 11c DHCP server with an XDP fast path (serve, leases, status)"),
}


def _doctor(args: argparse.Namespace) -> int:
    from packetlab.doctor import format_report, run_checks

    results = run_checks()
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(format_report(results))
    missing = [r for r in results if r.required and not r.ok]
    return 1 if missing else 0


def _clean(args: argparse.Namespace) -> int:
    from packetlab.topo.cleanup import clean

    removed, skipped = clean(force=args.force, dry_run=args.dry_run, lab=args.lab)
    verb = "would remove" if args.dry_run else "removed"
    for item in removed:
        print(f"{verb} {item}")
    for item in skipped:
        print(item)
    if not removed and not skipped:
        print("nothing to clean: no packetlab lab records left behind")
    return 0


def _progress(args: argparse.Namespace) -> int:
    from packetlab.course import progress

    if not args.reset:
        print(progress.progress_table())
        return 0
    path = progress.progress_file()
    if not args.yes:
        try:
            answer = input(f"forget all progress in {path}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing changed")
            return 0
    print(f"removed {path}" if progress.reset() else f"no progress recorded yet ({path})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in TOOLS:
        module = importlib.import_module(TOOLS[argv[0]][0])
        return module.main(argv[1:])  # the tool's CLI runs itself through run_cli
    parser = argparse.ArgumentParser(prog="packetlab", description="packetlab: Linux networking, eBPF and XDP labs")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("doctor", help="check the kernel, capabilities, headers and tools the labs need")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_doctor)
    p = sub.add_parser("clean", help="remove leftovers of crashed labs (only what packetlab recorded)")
    p.add_argument("--force", action="store_true", help="also remove labs whose process is still running")
    p.add_argument("--dry-run", action="store_true", help="show what would be removed")
    p.add_argument("--lab", help="only this lab")
    p.set_defaults(func=_clean)
    p = sub.add_parser("progress", help="your progress: exercises passed, attempted, reference used, per module")
    p.add_argument("--reset", action="store_true", help="forget all recorded progress")
    p.add_argument("--yes", action="store_true", help="with --reset: do not ask")
    p.set_defaults(func=_progress)
    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=lambda a: print(f"packetlab {__version__}") or 0)
    for name, (_, help_) in TOOLS.items():
        sub.add_parser(name, help=help_, add_help=False)
    args = document_exit_codes(parser).parse_args(argv)
    return run_cli("packetlab", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
