"""``packetlab analyze``: the module 11b packet analyzer from the command line.

    packetlab analyze live   --netns NS --dev IF [--seconds S] [--inspect afpacket|samples] [--filter EXPR]
                             [--snaplen N] [--sample N] [--db FILE] [--idle S] [--pcap FILE] [--dashboard PORT]
    packetlab analyze pcap   FILE [--db FILE] [--scan-ports N] [--json]
    packetlab analyze query  "TERMS" --db FILE [--json | --csv]
    packetlab analyze export --db FILE (--csv | --json | --ipfix HOST:PORT) [--where "TERMS"] [--alerts]

``live`` attaches bpf/11b-flow.c (XDP) to IF in a lab namespace, reads flow events, and
stores each flow when it has been idle for --idle seconds (and all of them at the end). The
inspector reads the packets an AF_PACKET TPACKET_V3 ring on IF lets through its socket filter
(--inspect afpacket, the default; --filter replaces the default filter, --snaplen the bytes kept),
or every Nth packet's head sampled by the XDP program (--inspect samples --sample N). ``pcap`` analyses a capture file with the userspace tier
(application labels, connection states, alerts). ``query`` filters and aggregates the
store (see ``--help-terms``); ``export`` writes flows or alerts as CSV or JSON, or sends
the flows as IPFIX to a collector (nfcapd, pmacct...). ``--retain AGE`` (live, pcap)
deletes flows older than AGE (e.g. 7d) from the store.

Exit codes: the convention of every packetlab command (`packetlab.errors.EXIT_CODES`):
0 ok, 1 refused input (a bad query term, not a pcap), 2 usage, 3 the system refused,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys

from packetlab.errors import UsageError, document_exit_codes, run_cli
from packetlab.show.tables import format_table
from packetlab.tools.analyzer.anomalies import Thresholds
from packetlab.tools.analyzer.export import PcapWriter, send_ipfix, to_csv, to_json
from packetlab.tools.analyzer.inspector import Inspector
from packetlab.tools.analyzer.query import HELP, compile_query, parse_time, run_query
from packetlab.tools.analyzer.store import FlowStore


def _retain(store: FlowStore, age: str | None) -> None:
    if age:
        n = store.prune(0.0, now=parse_time(f"-{age.lstrip('-')}"))
        print(f"retention: removed {n} flows older than {age}")


def _print_rows(rows: list[dict], fmt: str | None) -> None:
    if fmt == "json":
        print(to_json(rows))
    elif fmt == "csv":
        print(to_csv(rows), end="")
    elif rows:
        print(format_table(list(rows[0]), [list(r.values()) for r in rows]))
    else:
        print("no rows")


def cmd_live(args: argparse.Namespace) -> int:
    from packetlab.tools.analyzer.session import LiveSession, attach
    from packetlab.topo.names import check_namespace

    check_namespace(args.netns, allow_host=False, tool="the analyzer")
    afpacket = args.inspect == "afpacket"
    if afpacket and args.sample is not None:
        raise UsageError("--sample is for --inspect samples", fix="drop --sample, or add --inspect samples")
    if not afpacket and (args.filter or args.snaplen):
        raise UsageError(
            "--filter and --snaplen are for --inspect afpacket", fix="drop them, or add --inspect afpacket"
        )
    sample = 0 if afpacket else (1 if args.sample is None else args.sample)
    ring = None
    if afpacket:
        from packetlab.tools.analyzer.capture import INSPECT_SNAPLEN, open_ring

        ring = open_ring(args.netns, args.dev, filter=args.filter, snaplen=args.snaplen or INSPECT_SNAPLEN)
    try:
        xdp = attach(args.netns, args.dev, args.mode)
    except BaseException:
        if ring is not None:
            ring.close()
        raise
    pcap = PcapWriter(args.pcap) if args.pcap else None
    try:
        with (
            FlowStore(args.db) as store,
            LiveSession(xdp, sample_every=sample, idle=args.idle, store=store, pcap=pcap, ring=ring) as session,
        ):
            if args.dashboard is not None:
                from packetlab.tools.analyzer.dashboard import Dashboard

                with Dashboard(session, port=args.dashboard) as dash:
                    print(f"dashboard: {dash.url} (for {args.seconds:g} s)", flush=True)
                    dash.run(args.seconds)
            else:
                session.run(args.seconds)
            print(session.table())
            session.flush()
            c = session.monitor.counters()
            print(
                f"{c['packets']} packets, {c['flows']} flows, {session.stored} stored; lost: "
                f"table_full={c['table_full']} ringbuf_lost={c['ringbuf_lost']}"
            )
            if ring is not None:
                r = session.ring_stats()
                print(
                    f"inspected {r['read']} frames from the AF_PACKET ring; kernel: {r['packets']} accepted by the "
                    f"filter, drops={r['drops']} freeze_q={r['freeze_q']}"
                )
            else:
                print(f"inspected {session.events['sample']} sampled packet heads")
            for a in session.inspector.alerts:
                print("ALERT", a.summary(), json.dumps(a.evidence, default=str))
            if args.prometheus:
                print(session.metrics(), end="")
            _retain(store, args.retain)
    finally:
        xdp.detach()
        if ring is not None:
            ring.close()
        if pcap is not None:
            pcap.close()
            what = "inspected frames" if afpacket else "sampled packet heads"
            print(f"{pcap.frames} {what} written to {args.pcap}")
    return 0


def cmd_pcap(args: argparse.Namespace) -> int:
    t = Thresholds(scan_ports=args.scan_ports) if args.scan_ports else Thresholds()
    ins = Inspector(t).feed_pcap(args.file)
    recs = ins.records()
    with FlowStore(args.db) as store:
        store.add_flows(recs, source=args.file)
        store.add_alerts(ins.alerts)
        _retain(store, args.retain)
    if args.json:
        print(to_json([{"flows": [r.as_row() for r in recs], "alerts": [a.as_row() for a in ins.alerts]}]))
        return 0
    rows = [(str(r.key), r.app or "-", r.state or "-", r.packets, r.bytes) for r in recs]
    print(format_table(("flow", "app", "state", "packets", "bytes"), rows))
    for a in ins.alerts:
        print("ALERT", a.summary(), json.dumps(a.evidence, default=str))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    if args.help_terms:
        print(HELP)
        return 0
    if not args.terms:
        raise UsageError("no query terms", fix='e.g. packetlab analyze query "proto=tcp group=src" --db flows.db')
    with FlowStore(args.db) as store:
        _print_rows(run_query(store, args.terms), "json" if args.json else "csv" if args.csv else None)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with FlowStore(args.db) as store:
        if args.alerts:
            rows = store.alerts()
        else:
            q = compile_query(args.where or "")
            records = store.records(" AND ".join(q.where), q.params)
            if args.ipfix:
                host, _, port = args.ipfix.rpartition(":")
                if not host or not port.isdigit():
                    raise UsageError(f"--ipfix {args.ipfix}", fix="give HOST:PORT, e.g. 127.0.0.1:4739")
                n = send_ipfix(records, (host.strip("[]"), int(port)))
                print(f"sent {len(records)} flows in {n} IPFIX messages to {args.ipfix}")
                return 0
            rows = [r.as_row() for r in records]
    _print_rows(rows, "json" if args.json else "csv")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="packetlab analyze", description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = p.add_subparsers(dest="command", required=True)
    live = sub.add_parser("live", help="flow records from XDP on a lab interface")
    live.add_argument("--netns", required=True, help="the lab namespace (ip netns list)")
    live.add_argument("--dev", required=True, help="the interface whose received traffic to account")
    live.add_argument("--seconds", type=float, default=10.0)
    live.add_argument(
        "--inspect",
        choices=("afpacket", "samples"),
        default="afpacket",
        help="the inspector's packets: an AF_PACKET TPACKET_V3 ring behind a socket filter (default), "
        "or the XDP program's sampled heads",
    )
    live.add_argument("--filter", help="afpacket: a tcpdump expression replacing the default socket filter")
    live.add_argument("--snaplen", type=int, help="afpacket: bytes kept of each frame (default 1024)")
    live.add_argument(
        "--sample", type=int, help="samples: send every Nth packet's head to the inspector (default 1; 0: none)"
    )
    live.add_argument("--idle", type=float, default=15.0, help="store a flow after this many idle seconds")
    live.add_argument("--mode", default="native", help="XDP mode: native or generic")
    live.add_argument("--db", default=":memory:", help="SQLite flow store (default: none kept)")
    live.add_argument("--retain", help="delete flows older than this from the store (e.g. 7d, 12h)")
    live.add_argument("--prometheus", action="store_true", help="print the counters as Prometheus metrics")
    live.add_argument("--pcap", help="write what was inspected (ring frames or sampled heads) to this pcap file")
    live.add_argument(
        "--dashboard", type=int, metavar="PORT", help="serve a live page on http://127.0.0.1:PORT/ (0: any free port)"
    )
    live.set_defaults(func=cmd_live)
    pc = sub.add_parser("pcap", help="analyse a capture file")
    pc.add_argument("file")
    pc.add_argument("--db", default=":memory:")
    pc.add_argument("--retain")
    pc.add_argument("--scan-ports", type=int, help="port-scan threshold (ports per source in the window)")
    pc.add_argument("--json", action="store_true")
    pc.set_defaults(func=cmd_pcap)
    q = sub.add_parser("query", help="filter and aggregate the flow store")
    q.add_argument("terms", nargs="?", default="")
    q.add_argument("--db", required=True)
    q.add_argument("--json", action="store_true")
    q.add_argument("--csv", action="store_true")
    q.add_argument("--help-terms", action="store_true", help="the query language")
    q.set_defaults(func=cmd_query)
    ex = sub.add_parser("export", help="flows or alerts as CSV/JSON, or flows as IPFIX")
    ex.add_argument("--db", required=True)
    ex.add_argument("--where", help="query terms selecting the flows")
    ex.add_argument("--alerts", action="store_true", help="export the alerts instead of flows")
    fmt = ex.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV (the default)")
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--ipfix", metavar="HOST:PORT", help="send IPFIX over UDP to a collector")
    ex.set_defaults(func=cmd_export)
    return document_exit_codes(p)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run_cli("packetlab analyze", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
