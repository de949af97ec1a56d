"""packetlab.tools.lb — the module 09 milestone: an XDP L4 load balancer.

One XDP program (``bpf/09-lb.c``) on the load balancer's interfaces; backends
are chosen by Maglev consistent hashing (computed here, in userspace, and
installed in a map); a connection table (LRU hash) keeps an established flow
on its backend; two forwarding modes:

* ``mode: nat`` — full NAT like a kube-proxy replacement: the LB rewrites
  VIP:port to backend:port and, on the way back, backend:port to VIP:port
  (replies must be routed back through the LB). Module 10 builds Kubernetes
  ClusterIP Services on this mode.
* ``mode: dsr`` — encapsulation with direct server return like Katran: the LB
  wraps the packet in IPIP; the backend strips it (``bpf/09-lb-decap.c``) and
  answers the client directly from the VIP.

The stable Python API (module 10 builds on it)::

    from packetlab.tools.lb import LoadBalancer

    lb = LoadBalancer(node, ["eth0", "eth1"])     # a lab Host (or a namespace name) and the
                                                  # interfaces where client traffic and replies arrive
    lb.apply({"vips": [{"name": "web", "address": "10.96.0.10", "port": 80, "protocol": "tcp",
                        "mode": "nat",
                        "backends": [{"address": "10.244.1.2", "port": 8080},
                                     {"address": "10.244.2.3", "port": 8080, "weight": 2}]}]})
    lb.set_backends("web", ["10.244.1.2:8080", "10.244.2.3:8080"])   # by name or "10.96.0.10:80/tcp"
    lb.add_vip(make_vip("10.96.0.11", 53, ["10.244.1.9:53"], protocol="udp"))
    lb.remove_vip("10.96.0.11:53/udp")
    print(lb.status())                            # text table; lb.stats() for numbers,
    print(lb.prometheus())                        # Prometheus text format, lb.connections() for the table
    lb.close()                                    # detach everything (also done when the lab closes)

``apply`` validates the whole config first (``ConfigError`` lists every
problem) and installs nothing if it is invalid. Backends are resolved in the
LB's namespace (route + neighbour) so forwarded frames carry the right MAC
addresses; a backend whose next hop is unknown is still served through the
kernel's own forwarding (XDP_PASS after the rewrite). Hosts that *send* over
veth into the LB must have TX checksum offload off (``ethtool -K eth0 tx off``,
see `disable_tx_checksum`), because XDP cannot see CHECKSUM_PARTIAL packets.

The command line tool (``packetlab lb apply|status|remove|health``) pins the
program and maps under /sys/fs/bpf/packetlab/lb/<netns>-<dev>/ so they outlive
the command; see `packetlab.tools.lb.cli`.

Pieces, bottom up: `config` (the validated config), `layout` (the C structs and
constants of bpf/09-lb.c), `maglev`, `flows` (connection states), `health`,
`nexthop`, `encode` (config -> map entries, pure), `instance` (pins and records
of installed instances), `status` and `metrics` (reading back: report,
Prometheus), `balancer` (`LoadBalancer`), `pinned` (clean-up of stale installs),
`cli` (``packetlab lb``).
"""

from __future__ import annotations

from pathlib import Path

from packetlab.tools.lb.balancer import LoadBalancer, disable_tx_checksum
from packetlab.tools.lb.config import VIP, Backend, ConfigError, HealthCheck, LBConfig, make_vip
from packetlab.tools.lb.config import load as load_config

EXAMPLES = Path(__file__).resolve().parent / "examples"  # example YAML configs

__all__ = [
    "EXAMPLES",
    "LoadBalancer",
    "LBConfig",
    "VIP",
    "Backend",
    "HealthCheck",
    "ConfigError",
    "load_config",
    "make_vip",
    "disable_tx_checksum",
]
