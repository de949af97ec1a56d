"""The DHCP gateway lab: one gateway, a subscriber bridge, subscribers running busybox udhcpc.

::

      s1   s2   s3 ...        subscribers: no address until DHCP gives them one
        \\  |  /
           sw                  the access network (a bridge), 10.67.0.0/16
           |
      eth0 10.67.0.1
           gw                  packetlab dhcp serve: the slow path (userspace) +
                               bpf/11c-dhcp-fastpath.c on eth0 (XDP)

The notebook, the kernel tests and the benchmark all build it here. The server
runs as ``python -m packetlab dhcp serve`` in the gateway (a process the lab
stops); its lease store is a file in the lab's temporary folder, so a restart
finds the leases again, and the pinned fast path is removed when the lab ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from packetlab.errors import PacketlabError
from packetlab.tools.dhcp import fastpath
from packetlab.tools.dhcp.fastpath import FastPath
from packetlab.topo import servers as launch
from packetlab.topo.host import Host
from packetlab.topo.lab import Lab, Switch

SERVER_IP = "10.67.0.1"
METRICS_PORT = 9167
UDHCPC = ["busybox", "udhcpc"]


def pools(lease_time: int = 600, *, per_mac: int = 20, slow_path: int = 2000, size: int = 100) -> dict:
    """The lab's pools file, as a dict (written to YAML by `DhcpLab.write_config`)."""
    return {
        "server": {"id": SERVER_IP, "offer_hold": 30},
        "rate_limit": {
            "per_mac": per_mac,
            "per_mac_burst": per_mac * 2,
            "slow_path": slow_path,
            "slow_path_burst": slow_path * 2,
        },
        "pools": [
            {
                "name": "subscribers",
                "vlan": 0,
                "subnet": "10.67.0.0/16",
                "range": f"10.67.0.100-{_nth('10.67.0.100', size - 1)}",
                "router": SERVER_IP,
                "dns": [SERVER_IP],
                "lease_time": lease_time,
            }
        ],
    }


def _nth(first: str, n: int) -> str:
    import ipaddress

    return str(ipaddress.IPv4Address(first) + n)


_SCRIPT = """#!/bin/sh
# busybox udhcpc calls this on each event: record it, and configure the address
echo "$1 ${ip:-} ${lease:-} ${serverid:-}" >> {log}
case "$1" in
  bound|renew) ip addr replace "$ip/${mask:-24}" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
"""


@dataclass
class Subscriber:
    """One subscriber namespace and what its DHCP client has done."""

    host: Host
    script: Path
    log: Path
    client: subprocess.Popen | None = None

    @property
    def mac(self) -> str:
        return self.host.mac("eth0")

    def events(self) -> list[list[str]]:
        """Each udhcpc event: [event, ip, lease, serverid]."""
        try:
            return [line.split() for line in self.log.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def last(self, event: str | None = None) -> list[str] | None:
        found = [e for e in self.events() if event is None or e[0] == event]
        return found[-1] if found else None


@dataclass
class DhcpLab:
    lab: Lab
    gw: Host
    sw: Switch
    subs: list[Subscriber]
    workdir: Path
    server: launch.Server | None = None
    config: dict = field(default_factory=pools)

    @property
    def config_path(self) -> Path:
        return self.workdir / "pools.yaml"

    @property
    def store_path(self) -> Path:
        return self.workdir / "leases.sqlite"

    def write_config(self) -> Path:
        self.config_path.write_text(yaml.safe_dump(self.config))
        return self.config_path

    # ---- the server -------------------------------------------------------------------------
    def start_server(self, *, mode: str = "native", timeout: float = 30) -> launch.Server:
        self.write_config()
        argv = launch.python_module(
            "packetlab",
            "dhcp",
            "serve",
            "--config",
            self.config_path,
            "--netns",
            self.gw.namespace,
            "--dev",
            "eth0",
            "--store",
            self.store_path,
            "--mode",
            mode,
            "--metrics-port",
            METRICS_PORT,
        )
        self.server = launch.start(self.gw, argv, ready="ready", timeout=timeout)
        return self.server

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def fast_path(self) -> FastPath:
        """The pinned fast path's maps (close() it when done)."""
        return FastPath.open_pinned(fastpath.pin_dir(self.gw.namespace, "eth0"))

    def stats(self) -> dict[str, int]:
        fp = self.fast_path()
        try:
            return fp.stats()
        finally:
            fp.close()

    def metrics(self) -> str:
        return self.gw.run(["curl", "-s", f"http://{SERVER_IP}:{METRICS_PORT}/metrics"], check=True).stdout

    # ---- the clients ------------------------------------------------------------------------
    def lease_once(self, sub: Subscriber, *, timeout: float = 15) -> list[str]:
        """Run udhcpc until it has a lease and quit (-q); return its 'bound' event."""
        before = len(sub.events())
        res = sub.host.run(
            [*UDHCPC, "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-A", "1", "-s", str(sub.script)],
            timeout=timeout,
        )
        new = sub.events()[before:]
        bound = [e for e in new if e[0] == "bound"]
        if res.returncode != 0 or not bound:
            raise PacketlabError(
                f"udhcpc in {sub.host.name} got no lease",
                cause=(res.stdout + res.stderr).strip()[-600:] or f"exit status {res.returncode}",
                fix="is the server running (topo.start_server())? look at topo.server.text()",
            )
        return bound[-1]

    def run_client(self, sub: Subscriber, *, timeout: float = 10) -> list[str]:
        """Start udhcpc in the background (renews at T1, SIGUSR1 renews now, SIGUSR2 releases);
        return its 'bound' event once it has a lease."""
        before = len(sub.events())
        sub.client = sub.host.popen(
            [*UDHCPC, "-i", "eth0", "-f", "-t", "5", "-T", "1", "-A", "1", "-s", str(sub.script)]
        )
        return self.wait_event(sub, "bound", before, timeout=timeout)

    def wait_event(self, sub: Subscriber, event: str, since: int, *, timeout: float = 10) -> list[str]:
        """The first `event` udhcpc reported after its first `since` events (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = [e for e in sub.events()[since:] if e[0] == event]
            if new:
                return new[0]
            time.sleep(0.05)
        raise PacketlabError(
            f"udhcpc in {sub.host.name} did not report {event!r} within {timeout} s",
            cause=f"its events: {sub.events()[since:]}",
            fix="is the server running? look at topo.server.text()",
        )

    def signal_client(self, sub: Subscriber, sig: int, event: str, *, timeout: float = 10) -> list[str]:
        """Send `sig` to the background client and wait for its next `event` line."""
        assert sub.client is not None
        before = len(sub.events())
        sub.client.send_signal(sig)
        return self.wait_event(sub, event, before, timeout=timeout)

    def renew(self, sub: Subscriber) -> list[str]:
        return self.signal_client(sub, signal.SIGUSR1, "renew")

    def release(self, sub: Subscriber) -> None:
        assert sub.client is not None
        sub.client.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sub.host.addresses("eth0"):
            time.sleep(0.05)
        time.sleep(0.2)  # the RELEASE is on the wire before the address goes

    def stop_client(self, sub: Subscriber) -> None:
        if sub.client is not None:
            sub.client.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                sub.client.wait(timeout=3)
            sub.client = None


class _Unpin:
    """Tracked by the lab: on close, the fast path's pins go too (the namespace takes XDP with it)."""

    def __init__(self, netns: str) -> None:
        self.netns = netns

    def detach(self) -> None:
        fastpath.remove(self.netns, "eth0")


def build(lab: Lab, subscribers: int = 3, *, config: dict[str, Any] | None = None) -> DhcpLab:
    """Gateway, bridge and `subscribers` subscriber namespaces, each with its udhcpc script."""
    gw = lab.host("gw")
    sw = lab.switch("sw")
    uplink = lab.link(gw, sw, ip=f"{SERVER_IP}/16")
    # XDP_TX on a veth puts the frame in the peer's ring, and the kernel kicks the peer's NAPI to
    # read it only when the peer has an XDP program (veth_xdp_flush): without one, fast-path replies
    # wait until some other frame comes by. A real NIC has no such rule; a veth needs an XDP_PASS here.
    sw.attach_xdp("bpf/00-xdp-pass.c", uplink.b_ifname)
    workdir = Path(tempfile.mkdtemp(prefix=f"packetlab-{lab.name}-"))
    lab.track(_Unpin(gw.namespace))
    lab.track_workdir(workdir)  # removed with the lab, also if it dies (guardian, packetlab clean)
    subs = []
    for i in range(1, subscribers + 1):
        host = lab.host(f"s{i}")
        lab.link(host, sw)
        log = workdir / f"s{i}.events"
        script = workdir / f"s{i}.sh"
        script.write_text(_SCRIPT.replace("{log}", str(log)))
        os.chmod(script, 0o755)
        subs.append(Subscriber(host, script, log))
    return DhcpLab(lab, gw, sw, subs, workdir, config=config or pools())
