"""The module 11b lab: a client, a server and a scanner on one switch; real services on the
server (HTTP on 8443, TLS on 8444, DNS by dnsmasq when installed); traffic made by real
programs (curl, openssl s_client, dig, ping) and a SYN scan crafted with scapy; tcpdump
recording what the server receives."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from packetlab.topo import servers
from packetlab.topo.host import Host
from packetlab.topo.lab import Lab, Switch

CLIENT_IP, SERVER_IP, SCANNER_IP = "10.11.0.1", "10.11.0.2", "10.11.0.66"
HTTP_PORT, TLS_PORT = 8443, 8444  # HTTP on the port people expect TLS on: content, not port, decides
SNI = "secure.lab.test"


@dataclass
class AnalyzerLab:
    lab: Lab
    client: Host
    server: Host
    scanner: Host
    switch: Switch
    running: list[servers.Server] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="an-lab-")))

    @property
    def has_dns(self) -> bool:
        return shutil.which("dnsmasq") is not None and shutil.which("dig") is not None

    def start_services(self) -> None:
        """HTTP (python http.server) on 8443, TLS (openssl s_server, a self-signed cert) on 8444,
        and dnsmasq answering *.lab.test when it is installed."""
        s = self.server
        self.running.append(
            servers.start(
                s, servers.python_module("http.server", HTTP_PORT, "--bind", SERVER_IP), tcp=(SERVER_IP, HTTP_PORT)
            )
        )
        key, cert = self.workdir / "key.pem", self.workdir / "cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={SNI}"]
            + ["-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        argv = [
            "openssl",
            "s_server",
            "-accept",
            f"{SERVER_IP}:{TLS_PORT}",
            "-key",
            str(key),
            "-cert",
            str(cert),
            "-www",
        ]
        self.running.append(servers.start(s, argv, tcp=(SERVER_IP, TLS_PORT)))
        if self.has_dns:
            dns = ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", f"--listen-address={SERVER_IP}"]
            dns += ["--bind-interfaces", "--address=/lab.test/10.11.0.2", "--log-facility=-", "--pid-file="]
            self.running.append(servers.start(s, dns, tcp=(SERVER_IP, 53)))  # it answers over TCP too

    def normal_traffic(self, rounds: int = 3) -> None:
        """A few web requests, TLS handshakes, name lookups and pings from the client."""
        c = self.client
        for i in range(rounds):
            c.run(["curl", "-s", "-o", "/dev/null", f"http://{SERVER_IP}:{HTTP_PORT}/"], timeout=10, check=True)
            c.run(
                f"timeout 5 openssl s_client -connect {SERVER_IP}:{TLS_PORT} -servername {SNI} -brief </dev/null",
                timeout=10,
            )
            if self.has_dns:
                c.run(["dig", "+short", "+tries=1", "+time=1", f"@{SERVER_IP}", f"host{i}.lab.test"], timeout=5)
        c.ping(SERVER_IP, count=2, interval=0.2)

    def syn_scan(self, ports: range | list[int] = range(1, 201), *, source: str = SCANNER_IP) -> None:
        """A SYN scan from the scanner, crafted with scapy (nmap -sS sends the same probes)."""
        eth = Ether(dst=self.server.mac(), src=self.scanner.mac())
        frames = [bytes(eth / IP(src=source, dst=SERVER_IP) / TCP(sport=51000, dport=p, flags="S")) for p in ports]
        sock = self.scanner.l2socket()
        try:
            for f in frames:
                sock.send(f)
                time.sleep(0.0005)  # paced: a burst into a veth can overrun the receiver's backlog
        finally:
            sock.close()

    @contextlib.contextmanager
    def record(self, path: str | Path) -> Iterator[Path]:
        """tcpdump on the server's eth0 into `path` while the block runs."""
        tcpdump = servers.start(
            self.server,
            ["tcpdump", "-i", "eth0", "-U", "--immediate-mode", "-n", "-w", str(path)],
            ready="tcpdump: listening",
        )
        try:
            yield Path(path)
        finally:
            time.sleep(0.3)  # let tcpdump read what is still queued on its socket before it is stopped
            tcpdump.stop()

    def close(self) -> None:
        for srv in self.running:
            srv.stop()
        self.running.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def build(lab: Lab) -> AnalyzerLab:
    client, server, scanner = lab.host("client"), lab.host("server"), lab.host("scanner")
    sw = lab.switch("sw")
    lab.link(client, sw, ip=f"{CLIENT_IP}/24")
    lab.link(server, sw, ip=f"{SERVER_IP}/24")
    lab.link(scanner, sw, ip=f"{SCANNER_IP}/24")
    return AnalyzerLab(lab, client, server, scanner, sw)
