"""A real IPFIX collector for the lab: Debian's nfcapd (package nfdump) in a lab host, and
`nfdump -r` to read back what it stored — proof that our export is standard IPFIX,
not something only our own decoder understands."""

from __future__ import annotations

import csv
import glob
import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from packetlab.errors import MissingRequirement, PacketlabError
from packetlab.topo import servers
from packetlab.topo.host import Host

FIX = "install the collector: sudo apt-get install nfdump (vagrant/provision.sh --with-test-tools does)"


def require_nfdump() -> None:
    missing = [t for t in ("nfcapd", "nfdump") if shutil.which(t) is None]
    if missing:
        raise MissingRequirement(f"{' and '.join(missing)} not found", cause="Debian's nfdump package", fix=FIX)


@dataclass
class Collector:
    """nfcapd listening on `ip`:`port` in `host`, writing into `directory`."""

    host: Host
    ip: str
    port: int
    directory: str
    server: servers.Server

    def stop(self) -> list[dict]:
        """Stop nfcapd (it writes its file on exit) and return the flows it stored."""
        self.server.stop()
        rows = read_flows(self.directory)
        shutil.rmtree(self.directory, ignore_errors=True)
        return rows


def start_collector(host: Host, ip: str = "127.0.0.1", port: int = 4739) -> Collector:
    require_nfdump()
    directory = tempfile.mkdtemp(prefix="an-nfcapd-")
    argv = ["stdbuf", "-oL", "-eL", "nfcapd", "-w", directory, "-b", ip, "-p", str(port), "-t", "3600"]
    try:
        server = servers.start(host, argv, ready="Startup", fix=FIX)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return Collector(host, ip, port, directory, server)


def read_flows(directory: str) -> list[dict]:
    """Every flow in nfcapd's files, as nfdump prints them in CSV (src, dst, ports, proto, packets, bytes)."""
    files = sorted(f for f in glob.glob(os.path.join(directory, "nfcapd.*")) if "current" not in f)
    rows: list[dict] = []
    for path in files:
        out = subprocess.run(
            ["nfdump", "-r", path, "-o", "csv", "-q", "-N"], capture_output=True, text=True, timeout=30
        )
        if out.returncode != 0:
            raise PacketlabError(f"nfdump could not read {path}", cause=out.stderr.strip()[-300:], fix=FIX)
        for rec in csv.reader(io.StringIO(out.stdout)):
            if len(rec) < 13 or not rec[0][:1].isdigit():
                continue
            rows.append(
                {
                    "src": rec[3],
                    "dst": rec[4],
                    "sport": int(float(rec[5])),
                    "dport": int(float(rec[6])),
                    "proto": rec[7],
                    "flags": rec[8],
                    "packets": int(float(rec[11])),
                    "bytes": int(float(rec[12])),
                }
            )
    return rows
