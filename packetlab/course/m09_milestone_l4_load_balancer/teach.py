"""Small helpers the module 09 lab uses to *show* what the load balancer does.

They turn frames and tables into short text tables; the logic they display
lives in the data plane (bpf/09-lb.c) and the control plane (packetlab.tools.lb).
"""

from __future__ import annotations

from collections.abc import Sequence

from packetlab.show.tables import format_table
from packetlab.tools.lb import maglev


def checksums_ok(frame: bytes) -> dict[str, bool]:
    """Recompute the IPv4/TCP/UDP checksums with scapy and compare with the frame's own."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    pkt = Ether(frame)
    rebuilt = pkt.copy()
    out = {}
    for layer in (IP, TCP, UDP):
        if rebuilt.haslayer(layer) and not (layer is UDP and pkt[UDP].chksum == 0):
            del rebuilt[layer].chksum
    rebuilt = Ether(bytes(rebuilt))
    for layer in (IP, TCP, UDP):
        if pkt.haslayer(layer):
            a, b = pkt[layer].chksum, rebuilt[layer].chksum
            out[layer.__name__] = a == b or {a, b} == {0, 0xFFFF} or (layer is UDP and a == 0)
    return out


def _fields(frame: bytes) -> dict[str, str]:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    p = Ether(frame)
    f = {"eth dst": p.dst, "eth src": p.src}
    ips = []
    layer = p.payload
    while isinstance(layer, IP):
        ips.append(layer)
        layer = layer.payload
    for n, ip in enumerate(ips):
        tag = "outer " if len(ips) > 1 and n == 0 else ("inner " if n else "")
        f[f"{tag}ip src"], f[f"{tag}ip dst"] = ip.src, ip.dst
        f[f"{tag}ip proto"] = {4: "4 (IPIP)", 6: "6 (TCP)", 17: "17 (UDP)"}.get(ip.proto, str(ip.proto))
        f[f"{tag}ip len"] = str(ip.len)
        f[f"{tag}ip checksum"] = f"{ip.chksum:#06x}"
    l4 = p[TCP] if p.haslayer(TCP) else (p[UDP] if p.haslayer(UDP) else None)
    if l4 is not None:
        f["sport"], f["dport"] = str(l4.sport), str(l4.dport)
        f[f"{type(l4).__name__} checksum"] = f"{l4.chksum:#06x}"
    return f


def rewrite_table(before: bytes, after: bytes) -> str:
    """Header fields before and after the program, side by side (changed fields marked *)."""
    a, b = _fields(before), _fields(after)
    keys = list(dict.fromkeys(list(a) + list(b)))
    rows = [[k, a.get(k, ""), b.get(k, ""), "*" if a.get(k) != b.get(k) else ""] for k in keys]
    return format_table(["field", "in", "out", ""], rows)


def disruption_table(ns: Sequence[int] = (3, 5, 10), size: int = 65537) -> tuple[str, list[tuple[int, float, float]]]:
    """Share of flows that change backend when one of N backends is removed: Maglev vs hash % N."""
    rows = []
    for n in ns:
        names = [f"10.9.2.{10 + i}:80" for i in range(n)]
        before = maglev.named(maglev.build_table(names, size=size), names)
        rest = names[:-1]
        after = maglev.named(maglev.build_table(rest, size=size), rest)
        mag = maglev.disruption(before, after)
        flows = range(20000)
        mod = sum(
            1
            for i in flows
            if (h := maglev.flow_hash(f"10.9.1.{i % 250 + 1}", "10.9.100.1", 1024 + i, 80)) % n != h % (n - 1)
        ) / len(flows)
        rows.append((n, mag, mod))
    text = format_table(
        ["backends N", "Maglev: slots that move", "hash % N: flows that move", "1/N"],
        [[n, f"{100 * m:.1f}%", f"{100 * d:.1f}%", f"{100 / n:.1f}%"] for n, m, d in rows],
    )
    return text, rows


def spread_table(seen: dict[str, int], weights: dict[str, int]) -> str:
    """Requests per backend against the share the weights promise."""
    total = sum(seen.values()) or 1
    wsum = sum(weights.values()) or 1
    return format_table(
        ["backend", "weight", "expected", "requests", "measured"],
        [
            [b, w, f"{100 * w / wsum:.1f}%", seen.get(b, 0), f"{100 * seen.get(b, 0) / total:.1f}%"]
            for b, w in weights.items()
        ],
    )


def wait_for(condition, timeout: float = 10.0, step: float = 0.1) -> bool:
    """Poll `condition()` until it is true or `timeout` s pass (no fixed sleeps in the lab)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def run_lb_command(*args: str, show: bool = True, limit: int | None = None):
    """Run ``packetlab lb ARGS`` as a separate process (as you would in a shell) and print its output."""
    import subprocess
    import sys

    from packetlab.ebpf.loader import REPO_ROOT

    r = subprocess.run(
        [sys.executable, "-m", "packetlab", "lb", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    if show:
        out = (r.stdout + r.stderr).rstrip().splitlines()
        print(f"$ packetlab lb {' '.join(map(str, args))}    (exit {r.returncode})")
        print("\n".join(out[:limit] if limit else out))
    return r


def plot_disruption(rows):
    """Bars: share of flows moved when one of N backends leaves, Maglev vs hash % N."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.8))
    ns = [r[0] for r in rows]
    x = range(len(ns))
    ax.bar([i - 0.2 for i in x], [100 * r[1] for r in rows], 0.4, label="Maglev")
    ax.bar([i + 0.2 for i in x], [100 * r[2] for r in rows], 0.4, label="hash % N")
    ax.plot(list(x), [100 / n for n in ns], "k_", markersize=30, label="1/N")
    ax.set_xticks(list(x), [f"N={n}" for n in ns])
    ax.set_ylabel("% of flows that move")
    ax.set_title("removing one backend")
    ax.legend()
    fig.tight_layout()
    return fig


def capture_on(node, dev: str, *, filter: str | None = None):
    """Capture on any lab node's interface — also a switch port (Host.capture, for any namespace)."""
    from packetlab.topo.host import Host

    shim = Host.__new__(Host)
    shim.__dict__.update(node.__dict__)
    return shim.capture(dev, filter=filter)
