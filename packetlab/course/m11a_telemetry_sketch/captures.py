"""Real protocol traffic for the sketch: made by real programs between the lab's namespaces, captured
to small pcaps, replayed with tcpreplay.

The generators cannot be shipped as traffic, so the captures are: `packetlab/tools/sketch/pcaps/`
holds ``http.pcap`` (curl against Python's http.server), ``dns.pcap`` (dig against dnsmasq) and
``iperf3.pcap`` (an iperf3 UDP test and its TCP control connection), made by `make_captures` on
kernel 6.18 and cut to 128 bytes a frame (headers only: the sketch reads nothing further). Run
`make_captures(topo, directory)` to make your own; `replay` sends any capture — yours, or a CAIDA
trace — from h1 into h2, where the program counts it.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from packetlab.errors import MissingRequirement
from packetlab.tools.sketch.traffic import PCAP_DIR
from packetlab.topo import servers
from packetlab.topo.host import Host

from .topology import COLLECTOR_IP, SketchTopo

SNAPLEN = 128
SHIPPED = {name: PCAP_DIR / f"{name}.pcap" for name in ("http", "dns", "iperf3")}


def require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise MissingRequirement(
            f"{tool} is not installed", fix=f"sudo apt-get install {package} (vagrant/provision.sh installs it)"
        )
    return path


def _http(topo: SketchTopo) -> None:
    server = servers.start(
        topo.collector, servers.python_module("http.server", "8080", "--bind", COLLECTOR_IP), ready="Serving HTTP"
    )
    try:
        for i in range(5):
            topo.sender.run(["curl", "-s", "-o", "/dev/null", f"http://{COLLECTOR_IP}:8080/?page={i}"], check=True)
    finally:
        server.stop()


def _dns(topo: SketchTopo) -> None:
    require("dnsmasq", "dnsmasq-base")
    argv = ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces", "--pid-file="]
    argv += [f"--listen-address={COLLECTOR_IP}", f"--address=/lab.test/{COLLECTOR_IP}"]
    server = servers.start(topo.collector, argv, tcp=(COLLECTOR_IP, 53))
    try:
        for i in range(12):
            topo.sender.run(["dig", "+short", "+tries=1", f"@{COLLECTOR_IP}", f"host{i}.lab.test"], check=True)
    finally:
        server.stop()


def _iperf3(topo: SketchTopo) -> None:
    server = servers.start(
        topo.collector, ["iperf3", "-s", "-1", "--forceflush", "-B", COLLECTOR_IP], ready="Server listening"
    )
    try:
        topo.sender.run(
            ["iperf3", "-c", COLLECTOR_IP, "-u", "-b", "400K", "-l", "100", "-n", "30K"], check=True, timeout=20
        )
    finally:
        server.stop()


GENERATORS: dict[str, Callable[[SketchTopo], None]] = {"http": _http, "dns": _dns, "iperf3": _iperf3}


def capture(host: Host, out: Path, traffic: Callable[[], None], *, dev: str = "eth0") -> Path:
    """Capture on `host`'s `dev` while `traffic()` runs (tcpdump, SNAPLEN bytes a frame)."""
    require("tcpdump", "tcpdump")
    dump = servers.start(
        host,
        ["tcpdump", "-i", dev, "-s", str(SNAPLEN), "-U", "--immediate-mode", "-n", "-w", str(out)],
        ready="tcpdump: listening",
    )
    try:
        traffic()
        time.sleep(0.2)  # the last replies
    finally:
        dump.stop()
    return out


def make_captures(topo: SketchTopo, directory: Path) -> dict[str, Path]:
    """Run each generator between h1 and h2 and capture it on h1; returns name -> pcap."""
    directory.mkdir(parents=True, exist_ok=True)
    return {
        name: capture(topo.sender, directory / f"{name}.pcap", functools.partial(gen, topo))
        for name, gen in GENERATORS.items()
    }


def replay(topo: SketchTopo, pcap: Path, *, dev: str = "eth0") -> int:
    """Send every frame of `pcap` out of h1's `dev` (tcpreplay, as fast as it can); returns frames sent."""
    require("tcpreplay", "tcpreplay")
    out = topo.sender.run(["tcpreplay", "-q", "-t", "-i", dev, str(pcap)], check=True, timeout=60)
    for line in (out.stdout + out.stderr).splitlines():
        if line.strip().startswith("Actual:"):
            return int(line.split()[1])
    return -1
