"""A lab host: one network namespace you can run commands in, ping from,
capture on, send crafted packets from and attach XDP programs to."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packetlab.ebpf.loader import TcAttachment, XdpAttachment, acquire, check_tc_direction, check_xdp_mode
from packetlab.errors import PacketlabError
from packetlab.topo import netns
from packetlab.topo.names import HostNamespace, check_sysctl_key, current_netns_id, is_host_netns
from packetlab.topo.netns import CommandResult
from packetlab.topo.state import ProcessRecord, process_start_time

if TYPE_CHECKING:
    from packetlab.topo.lab import Lab


@dataclass
class PingResult:
    """Parsed output of ping."""

    destination: str
    sent: int
    received: int
    rtt_avg_ms: float | None
    output: str

    @property
    def ok(self) -> bool:
        return self.received > 0

    @property
    def loss(self) -> float:
        return 1 - self.received / self.sent if self.sent else 1.0

    def __str__(self) -> str:
        rtt = f", avg rtt {self.rtt_avg_ms:.3f} ms" if self.rtt_avg_ms is not None else ""
        return f"ping {self.destination}: {self.received}/{self.sent} replies{rtt}"


def parse_ping(destination: str, output: str) -> PingResult:
    """Read sent/received counts and the average RTT from iputils ping output."""
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", output)
    sent, received = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    rtt = re.search(r"= [\d.]+/([\d.]+)/", output)
    return PingResult(destination, sent, received, float(rtt.group(1)) if rtt else None, output)


class Node:
    """Anything that owns a namespace in a lab (a host, router or switch)."""

    def __init__(self, lab: Lab, name: str, namespace: str) -> None:
        self.lab, self.name, self.namespace = lab, name, namespace
        self._next_if = 0

    def next_ifname(self) -> str:
        name = f"eth{self._next_if}"
        self._next_if += 1
        return name

    def run(
        self, cmd: Sequence[str] | str, *, timeout: float = 30, check: bool = False, input: str | None = None
    ) -> CommandResult:
        """Run `cmd` inside this node's namespace; a string goes through ``sh -c``."""
        return netns.run(self.namespace, cmd, timeout=timeout, check=check, input=input)

    def ip(self, args: str) -> str:
        """Run ``ip <args>`` here and return its output (raises on failure)."""
        return self.run(["ip", *args.split()], check=True).stdout

    def sysctl(self, key: str, value: Any = None) -> str:
        """Read or set a per-namespace sysctl (e.g. ``net.ipv4.ip_forward``).

        Only ``net.*`` keys (the others are global), and a write only where this host's
        namespace is not the host's own (by inode: a namespace file that is PID 1's
        namespace under another name is refused too)."""
        path = "/proc/sys/" + check_sysctl_key(key).replace(".", "/")
        with netns.entered(self.namespace):
            if value is not None:
                if is_host_netns(current_netns_id()):
                    raise HostNamespace(
                        f"refusing to set {key} in {self.namespace}: it is the host's own network namespace",
                        cause="the write would change this machine's setting, not a lab's",
                        fix="set sysctls on lab hosts only",
                    )
                with open(path, "w") as f:
                    f.write(str(value))
            with open(path) as f:
                return f.read().strip()

    def attach_xdp(
        self,
        source: str,
        dev: str = "eth0",
        *,
        mode: str = "native",
        function: str | None = None,
        cflags: Sequence[str] = (),
        fresh: bool = False,
    ) -> XdpAttachment:
        """Compile `source` (a bpf/ file) with bcc and attach it to `dev` here.

        The attachment is detached when you call ``detach()``, leave its ``with``
        block, or when the lab ends — whichever comes first.
        """
        check_xdp_mode(mode)
        program = acquire(source, function=function, prog_type="xdp", cflags=cflags, fresh=fresh)
        try:
            attachment = XdpAttachment(program, self.namespace, dev, mode, pooled=not fresh)
        except BaseException:
            program.close()
            raise
        self.lab.track(attachment)
        return attachment

    def attach_tc(
        self,
        source: str,
        dev: str = "eth0",
        *,
        direction: str = "ingress",
        function: str | None = None,
        cflags: Sequence[str] = (),
        priority: int = 1,
        fresh: bool = False,
    ) -> TcAttachment:
        """Compile `source` with bcc as a tc (sched_cls) program and attach it to
        `dev`'s clsact `direction` hook (direct-action). Detached like XDP."""
        check_tc_direction(direction)  # before compiling: a typo should not cost a second
        program = acquire(source, function=function, prog_type="sched_cls", cflags=cflags, fresh=fresh)
        try:
            attachment = TcAttachment(program, self.namespace, dev, direction, priority, pooled=not fresh)
        except BaseException:
            program.close()
            raise
        self.lab.track(attachment)
        return attachment

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ns={self.namespace}>"


class Host(Node):
    """A host (or router) namespace with helpers for traffic and XDP."""

    def popen(self, cmd: Sequence[str] | str, **kwargs: Any) -> subprocess.Popen:
        """Start a long-running program (a server) here; the lab stops it on exit."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.STDOUT)
        kwargs.setdefault("text", True)
        argv = netns.nsenter_argv(self.namespace, cmd)
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.lab._track_process(proc, ProcessRecord(proc.pid, process_start_time(proc.pid), self.namespace, argv))
        return proc

    def ping(
        self,
        destination: str,
        *,
        count: int = 1,
        timeout: float = 2,
        interval: float = 0.2,
        size: int | None = None,
        dont_fragment: bool = False,
        check: bool = False,
    ) -> PingResult:
        """Ping `destination` (IPv4 or IPv6) from this host and return the parsed result."""
        argv = ["ping", "-c", str(count), "-W", str(timeout), "-i", str(interval), "-n"]
        if ":" in destination:
            argv.insert(1, "-6")
        if size is not None:
            argv += ["-s", str(size)]
        if dont_fragment:
            argv += ["-M", "do"]
        out = self.run(argv + [destination], timeout=timeout * count + interval * count + 5)
        result = parse_ping(destination, out.stdout + out.stderr)
        if check and not result.ok:
            raise PacketlabError(
                f"{self.name} cannot reach {destination}",
                cause=f"{result.sent} echo requests, no reply ({out.stderr.strip() or 'timeout'})",
                fix=f"check addresses and routes: {self.name}.ip('route get {destination}')",
            )
        return result

    def addresses(self, dev: str | None = None) -> list[str]:
        """Global addresses (with prefix length) of this host, optionally of one device."""
        from packetlab.topo.rtnl import iproute

        with iproute(netns=self.namespace) as ipr:
            kw = {"index": ipr.link_lookup(ifname=dev)[0]} if dev else {}
            return [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(**kw) if a["scope"] == 0]

    def mac(self, dev: str = "eth0") -> str:
        from packetlab.topo.rtnl import iproute

        with iproute(netns=self.namespace) as ipr:
            return ipr.get_links(ifname=dev)[0].get_attr("IFLA_ADDRESS")

    def pin_neighbour(self, ip: str, mac: str, dev: str = "eth0") -> None:
        """Make `ip` a permanent neighbour at `mac`: this host never asks for it by ARP/ND and
        never re-probes it. A lab that counts every frame on a link pins both ends, so
        nothing but its own traffic crosses the link (a reachability probe answered in the
        middle of a count would be one frame the count cannot place)."""
        self.ip(f"neigh replace {ip} lladdr {mac} dev {dev} nud permanent")

    def add_route(
        self,
        dst: str,
        *,
        via: str | None = None,
        dev: str | None = None,
        table: int | None = None,
        type: str | None = None,
        metric: int | None = None,
    ) -> None:
        """Add a route here (e.g. ``add_route('default', via='10.0.1.254')``)."""
        argv = ["ip", "-6" if ":" in (dst + (via or "")) else "-4", "route", "add"]
        argv += [type, dst] if type else [dst]
        for flag, value in (("via", via), ("dev", dev), ("table", table), ("metric", metric)):
            if value is not None:
                argv += [flag, str(value)]
        self.run(argv, check=True)

    def enable_forwarding(self) -> None:
        """Make this host a router (IPv4 and IPv6 forwarding on, in its namespace only)."""
        self.sysctl("net.ipv4.ip_forward", 1)
        self.sysctl("net.ipv6.conf.all.forwarding", 1)

    def nft(self, ruleset: str) -> CommandResult:
        """Load an nftables ruleset (``nft -f -``) into this host's namespace only."""
        return self.run(["nft", "-f", "-"], input=ruleset, check=True)

    # ---- packets ---------------------------------------------------------------------
    def l2socket(self, dev: str = "eth0", *, listen: bool = False) -> Any:
        """A scapy layer-2 socket bound to `dev` inside this namespace."""
        import scapy.layers.inet6  # noqa: F401  (registers Ether/IP/IPv6, so frames decode, not Raw)
        from scapy.arch.linux import L2ListenSocket, L2Socket

        with netns.entered(self.namespace):
            cls = L2ListenSocket if listen else L2Socket
            return cls(iface=dev, promisc=False)

    def send(self, packet: Any, dev: str = "eth0", *, count: int = 1) -> None:
        """Send a crafted scapy frame (with an Ether layer) out of `dev`."""
        sock = self.l2socket(dev)
        try:
            for _ in range(count):
                sock.send(packet)
        finally:
            sock.close()

    def srp1(self, packet: Any, dev: str = "eth0", *, timeout: float = 2) -> Any:
        """Send a frame and return the first answer (scapy's srp1, inside this namespace)."""
        sock = self.l2socket(dev)
        try:
            return sock.sr1(packet, timeout=timeout, verbose=False)
        finally:
            sock.close()

    @contextlib.contextmanager
    def capture(self, dev: str = "eth0", *, filter: str | None = None, settle: float = 0.05) -> Iterator[list]:
        """Capture frames on `dev` while the block runs; the list fills when it ends.

        >>> with h2.capture() as frames:
        ...     h1.ping("10.0.1.2")
        >>> frames[0].summary()
        """
        from scapy.sendrecv import AsyncSniffer

        sock = self.l2socket(dev, listen=True)
        if filter:
            attach_capture_filter(sock.ins, filter)
            _drain(sock)  # frames queued between opening the socket and attaching the filter bypassed it
        sniffer = AsyncSniffer(opened_socket=sock, store=True)
        frames: list = []
        sniffer.start()
        time.sleep(settle)
        try:
            yield frames
        finally:
            time.sleep(settle)
            frames.extend(sniffer.stop() or [])
            frames.extend(_drain(sock))  # frames still queued when the sniffer stopped
            sock.close()


def _drain(sock: Any) -> list:
    """Read the frames already queued on a capture socket, without waiting.

    AsyncSniffer.stop() ends its loop without emptying the socket, so on a busy
    machine the last frames of a capture (a TCP teardown's final ACK) could be lost.
    """
    import select

    out = []
    while select.select([sock.ins], [], [], 0)[0]:
        frame = sock.recv()
        if frame is not None:
            out.append(frame)
    return out


def attach_capture_filter(sock: Any, expression: str) -> None:
    """Compile a tcpdump filter for Ethernet and attach it to a packet socket.

    Compiled for the link type (DLT_EN10MB), not by interface name: the lab's
    interface lives in another namespace, where libpcap could not find it.
    """
    import socket as _socket

    from scapy.arch.common import compile_filter, free_filter
    from scapy.data import DLT_EN10MB, SO_ATTACH_FILTER
    from scapy.error import Scapy_Exception
    from scapy.libs.structures import sock_fprog

    try:
        program = compile_filter(expression, linktype=DLT_EN10MB)
    except Scapy_Exception as exc:
        raise PacketlabError(
            f"invalid capture filter {expression!r}",
            cause=str(exc),
            fix="use tcpdump filter syntax, e.g. 'icmp', 'arp', 'tcp port 80'",
        ) from None
    try:
        sock.setsockopt(_socket.SOL_SOCKET, SO_ATTACH_FILTER, sock_fprog(program.bf_len, program.bf_insns))
    finally:
        free_filter(program)


def interface_addresses(spec: str | Sequence[str] | None) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """Parse ``"10.0.1.1/24"`` or ``["10.0.1.1/24", "fd00::1/64"]`` into interfaces."""
    if spec is None:
        return []
    items = [spec] if isinstance(spec, str) else list(spec)
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_interface(item))
        except ValueError as exc:
            raise PacketlabError(
                f"not an address with prefix length: {item!r}",
                cause=str(exc),
                fix="write addresses as '10.0.1.1/24' or 'fd00::1/64'",
            ) from None
        if "/" not in item:
            raise PacketlabError(
                f"address {item!r} has no prefix length",
                cause="without /N the kernel assumes /32 (or /128) and no subnet route is made",
                fix=f"write it as '{item}/24' (or the prefix you mean)",
            )
    return out


def stop_process(proc: subprocess.Popen, timeout: float = 2) -> None:
    """SIGTERM a process group we started, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
