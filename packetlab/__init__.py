"""packetlab: a hands-on course in Linux networking, eBPF and XDP on the real kernel."""

from __future__ import annotations

__version__ = "0.1.0"

from packetlab.errors import PacketlabError  # noqa: E402
from packetlab.scapy_routes import quiet_host_route_warnings  # noqa: E402
from packetlab.topo.host import Host  # noqa: E402
from packetlab.topo.lab import Lab, Link, Switch  # noqa: E402

quiet_host_route_warnings()

__all__ = ["Lab", "Host", "Switch", "Link", "PacketlabError", "__version__"]
