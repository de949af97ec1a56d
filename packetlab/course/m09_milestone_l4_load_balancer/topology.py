"""The load balancer lab topology, built the same way by the notebook, the tests and the benchmark.

::

      c1  c2  c3                  clients 10.9.1.1x      (VIPs 10.9.100.0/24 routed via the LB)
       \\  |  /
         swc ─────────────────┐   client network 10.9.1.0/24
          |                   │
     eth0 10.9.1.254          │   DSR return path: backends' eth1 (10.9.1.1xx/32),
          lb   (XDP)          │   used only for replies *from a VIP address*
     eth1 10.9.2.254          │   (ip rule from 10.9.100.0/24 lookup 100)
          |                   │
         swb ── MTU 1600      │   backend network 10.9.2.0/24 (room for the IPIP header)
       /  |  \\               │
      b1  b2  b3  ────────────┘   backends 10.9.2.1x, default route via the LB (NAT replies),
                                  VIPs on lo (DSR), 09-lb-decap.c on eth0

Both forwarding modes run on the same wires: NAT replies (source = the
backend's own address) go back through the LB, DSR replies (source = the VIP)
go straight to the client over the backends' second interface.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field

from packetlab.errors import PacketlabError
from packetlab.topo import servers as launch
from packetlab.topo.host import Host
from packetlab.topo.lab import Lab, Switch

CLIENT_NET = "10.9.1"
BACKEND_NET = "10.9.2"
VIP_NET = "10.9.100.0/24"
VIP = "10.9.100.1"
LB_CLIENT_IP = "10.9.1.254"
LB_BACKEND_IP = "10.9.2.254"
BACKEND_MTU = 1600
DSR_TABLE = 100


@dataclass
class LBTopology:
    """Handles on the hosts of the load balancer lab."""

    lab: Lab
    lb: Host
    clients: list[Host]
    backends: list[Host]
    swc: Switch
    swb: Switch
    servers: dict[str, launch.Server] = field(default_factory=dict)
    decaps: dict = field(default_factory=dict)

    def client_ip(self, i: int) -> str:
        return f"{CLIENT_NET}.{11 + i}"

    def backend(self, name: str) -> Host:
        for b in self.backends:
            if b.name == name:
                return b
        raise PacketlabError(f"no backend {name!r}", fix=f"backends: {', '.join(b.name for b in self.backends)}")

    def backend_ip(self, name: str) -> str:
        return f"{BACKEND_NET}.{10 + int(name.lstrip('b'))}"

    def backend_entries(self, port: int | None = None, weights: dict[str, int] | None = None) -> list[dict]:
        """Config entries for every backend: ``[{name, address, port, weight}]``."""
        out = []
        for b in self.backends:
            e = {"name": b.name, "address": self.backend_ip(b.name), "weight": (weights or {}).get(b.name, 1)}
            if port is not None:
                e["port"] = port
            out.append(e)
        return out

    def config(
        self,
        mode: str = "nat",
        names: tuple[str, ...] | None = None,
        weights: dict[str, int] | None = None,
        **vip: object,
    ) -> dict:
        """A one-VIP config ("web", 10.9.100.1:80) over some or all backends."""
        backends = [e for e in self.backend_entries(weights=weights) if names is None or e["name"] in names]
        return {"vips": [dict({"name": "web", "address": VIP, "port": 80, "mode": mode, "backends": backends}, **vip)]}

    # -- servers --
    def start_server(self, name: str, *, port: int = 80, udp_port: int | None = 5353, wait: float = 10) -> None:
        """Start packetlab.tools.lb.httpd on backend `name` and wait until it listens."""
        argv = launch.python_module("packetlab.tools.lb.httpd", "--name", name, "--port", port)
        if udp_port:
            argv += ["--udp-port", str(udp_port)]
        self.servers[name] = launch.start(self.backend(name), argv, timeout=wait)

    def start_servers(self, **kw) -> None:
        for b in self.backends:
            self.start_server(b.name, **kw)

    def stop_server(self, name: str) -> None:
        """Kill backend `name`'s server (its host stays up: connections are refused)."""
        server = self.servers.pop(name, None)
        if server is not None:
            server.stop()

    # -- clients --
    def curl(
        self, client: Host, url: str, *, count: int = 1, timeout: float = 2, new_connections: bool = True
    ) -> list[str]:
        """GET `url` `count` times from `client` (one curl process); the response bodies, one per request.

        With `new_connections`, every request is its own TCP connection (a new
        source port, so a new 5-tuple for the load balancer to hash)."""
        target = f"{url.rstrip('/')}/[1-{count}]" if count > 1 else url
        argv = ["curl", "-s", "-g" if count == 1 else "-s", "-m", str(timeout)]
        if new_connections:
            argv += ["-H", "Connection: close"]
        r = client.run(argv + [target], timeout=timeout * count + 10)
        return [line for line in r.stdout.splitlines() if line.strip()]

    def spread(self, url: str, per_client: int = 100, **kw) -> Counter:
        """Requests from every client; how many each backend served."""
        seen: Counter = Counter()
        for c in self.clients:
            for line in self.curl(c, url, count=per_client, **kw):
                seen[line.split()[0]] += 1
        return seen


def build(lab: Lab, *, clients: int = 3, backends: int = 3, vips: tuple[str, ...] = (VIP,)) -> LBTopology:
    """Build the topology above in `lab` (hosts lb, c1.., b1.., switches swc, swb)."""
    swc, swb = lab.switch("swc"), lab.switch("swb")
    lb = lab.router("lb")
    lab.link(lb, swc, ip=f"{LB_CLIENT_IP}/24")
    lab.link(lb, swb, ip=f"{LB_BACKEND_IP}/24", mtu=BACKEND_MTU)
    # XDP_REDIRECT into a veth needs NAPI on its peer: GRO on the switch ports facing the LB
    for sw, port in ((swc, "lb-eth0"), (swb, "lb-eth1")):
        sw.run(["ethtool", "-K", port, "gro", "on"], check=True)
    swb.run(["ip", "link", "set", "dev", "swb", "mtu", str(BACKEND_MTU)], check=True)
    cs = []
    for i in range(clients):
        c = lab.host(f"c{i + 1}")
        lab.link(c, swc, ip=f"{CLIENT_NET}.{11 + i}/24")
        c.add_route(VIP_NET, via=LB_CLIENT_IP)
        c.run(["ethtool", "-K", "eth0", "tx", "off"], check=True)
        cs.append(c)
    bs = []
    for i in range(backends):
        n = i + 1
        b = lab.host(f"b{n}")
        lab.link(b, swb, ip=f"{BACKEND_NET}.{10 + n}/24", mtu=BACKEND_MTU)
        lab.link(b, swc, ip=f"{CLIENT_NET}.{110 + n}/32")
        b.add_route("default", via=LB_BACKEND_IP)
        for v in vips:
            b.run(["ip", "addr", "add", f"{v}/32", "dev", "lo"], check=True)
        # DSR: replies *from a VIP* go straight to the clients, everything else via the LB
        b.run(["ip", "rule", "add", "from", VIP_NET, "lookup", str(DSR_TABLE), "pref", "100"], check=True)
        b.run(["ip", "route", "add", f"{CLIENT_NET}.0/24", "dev", "eth1", "table", str(DSR_TABLE)], check=True)
        for key, val in (
            ("net.ipv4.conf.all.arp_ignore", 1),
            ("net.ipv4.conf.all.arp_announce", 2),
            ("net.ipv4.conf.all.rp_filter", 0),
            ("net.ipv4.conf.eth0.rp_filter", 0),
        ):
            b.sysctl(key, val)
        for dev in ("eth0", "eth1"):
            b.run(["ethtool", "-K", dev, "tx", "off"], check=True)
        bs.append(b)
    topo = LBTopology(lab, lb, cs, bs, swc, swb)
    return topo


def attach_decap(topo: LBTopology) -> None:
    """Load 09-lb-decap.c on every backend's eth0 (DSR needs it; NAT traffic passes through)."""
    import socket

    for b in topo.backends:
        x = b.attach_xdp("bpf/09-lb-decap.c", dev="eth0")
        addr = int.from_bytes(socket.inet_aton(topo.backend_ip(b.name)), "little")
        x["local_addrs"][x["local_addrs"].Key(addr)] = x["local_addrs"].Leaf(1)
        x["decap_config"][x["decap_config"].Key(0)] = x["decap_config"].Leaf(1)
        topo.decaps[b.name] = x


class HttpConnection:
    """One long-lived (keep-alive) HTTP connection from a client host to a VIP.

    Every `get()` is a request on the *same* TCP connection, so the same 5-tuple:
    it shows which backend the connection table keeps it on.
    """

    def __init__(
        self, client: Host, address: str, port: int = 80, *, source_port: int = 0, timeout: float = 2.0
    ) -> None:
        import socket as _socket

        from packetlab.topo import netns as _netns

        with _netns.entered(client.namespace):
            self.sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        self.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        self.sock.settimeout(timeout)
        if source_port:
            self.sock.bind(("0.0.0.0", source_port))
        self.sock.connect((address, port))
        self.address, self.port = address, port
        self.source_port = self.sock.getsockname()[1]
        self._buf = b""

    def get(self, path: str = "/") -> str:
        """One request; returns the backend's name (raises ConnectionError if the connection broke)."""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {self.address}\r\n\r\n".encode())
        while b"\r\n\r\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self._buf += chunk
        head, _, rest = self._buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(rest) < length:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the server closed the connection mid-answer")
            rest += chunk
        body, self._buf = rest[:length], rest[length:]
        return body.decode().split()[0]

    def close(self) -> None:
        """Abort the connection (RST): no TIME_WAIT, so the same source port can connect again."""
        import socket as _socket
        import struct as _struct

        with contextlib.suppress(OSError):
            self.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, _struct.pack("ii", 1, 0))
        self.sock.close()

    def __enter__(self) -> HttpConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def udp_ask(client: Host, address: str, port: int, *, source_port: int = 0, timeout: float = 1.0) -> str | None:
    """Send one datagram from `client` to address:port; the first word of the answer (None on timeout)."""
    import socket as _socket

    from packetlab.topo import netns as _netns

    with _netns.entered(client.namespace):
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        if source_port:
            s.bind(("0.0.0.0", source_port))
        s.sendto(b"hello", (address, port))
        data, _ = s.recvfrom(2048)
        return data.decode().split()[0]
    except (TimeoutError, OSError):
        return None
    finally:
        s.close()
