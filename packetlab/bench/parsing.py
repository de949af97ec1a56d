"""Parse speed: scapy vs dpkt vs packetlab's struct decoder on the same captured frames.

    python -m packetlab.bench parsing [--frames 5000] [--repeat 5]

Builds a two-host lab (``pybench``), captures real traffic (TCP echo, UDP,
ping, 802.1Q-tagged frames) with the raw-socket sniffer, checks that every
parser reads the same flow keys, then times each parser over the same frames
(best of `repeat` passes) and prints packets/s and the ratio to scapy.
With ``--pcap FILE`` it parses the frames of a pcap file instead of capturing.
"""

from __future__ import annotations

import argparse
import sys

from packetlab.show.tables import format_table


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_pcap(path: str, limit: int) -> list[bytes]:
    """Ethernet frames of a pcap file (dpkt's reader), at most `limit`."""
    import dpkt

    frames = []
    with open(path, "rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            frames.append(bytes(buf))
            if len(frames) >= limit:
                break
    return frames


def capture(frames: int) -> list[bytes]:
    from packetlab.course.m05_python_network_programming.sample import capture_mix
    from packetlab.topo.lab import Lab

    with Lab("pybench") as lab:
        client, server = lab.host("c"), lab.host("s")
        lab.link(client, server, ip="10.0.5.1/24", peer_ip="10.0.5.2/24")
        return [f.data for f in capture_mix(client, server, "10.0.5.2", frames=frames)]


def main(argv: list[str]) -> int:
    from packetlab.course.m05_python_network_programming import parsebench

    ap = argparse.ArgumentParser(prog="python -m packetlab.bench parsing", description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=5000, help="frames to capture (default 5000)")
    ap.add_argument("--repeat", type=int, default=5, help="passes per parser; the best counts (default 5)")
    ap.add_argument("--pcap", help="parse the frames of this pcap file instead of capturing")
    ap.add_argument("--budget", type=float, default=20.0, help="max seconds per parser (default 20)")
    args = ap.parse_args(argv)
    if args.pcap:
        frames = load_pcap(args.pcap, args.frames)
        source = args.pcap
    else:
        _progress(f"capturing {args.frames} frames of TCP/UDP/ICMP/VLAN traffic between two lab hosts ...")
        frames = capture(args.frames)
        source = "captured in lab pybench"
    if not frames:
        print("no frames to parse", file=sys.stderr)
        return 1
    _progress("checking that every parser reads the same flow keys as scapy ...")
    agree = parsebench.agreement(frames)
    results = []
    for name in parsebench.PARSERS:
        _progress(f"timing {name} ({args.repeat} passes over {len(frames)} frames) ...")
        results.append(parsebench.time_parser(name, frames, args.repeat, args.budget))
    print(f"frames: {len(frames)} ({source}); flow keys vs scapy: " + ", ".join(f"{k} {v}" for k, v in agree.items()))
    print(format_table(parsebench.TABLE_HEADERS, parsebench.table_rows(results)))
    return 0
