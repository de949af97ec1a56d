"""Route lookups in a lab host: what the kernel decides (`ip route get`) and longest-prefix match by hand."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# ---- routing -------------------------------------------------------------------------------

#: what `ip route get` answers for the special route types (the kernel returns an errno)
ROUTE_ERRORS = {
    "Invalid argument": "blackhole",
    "No route to host": "unreachable",
    "Permission denied": "prohibit",
    "Network is unreachable": "no route",
}


@dataclass
class RouteDecision:
    """The kernel's answer to "where would a packet to `dst` go?" (``ip route get``)."""

    dst: str
    kind: str  # unicast, local, blackhole, unreachable, prohibit, no route
    dev: str | None = None
    via: str | None = None
    src: str | None = None
    matched: str | None = None  # the route entry that matched (``ip route get fibmatch``)
    error: str | None = None

    def __str__(self) -> str:
        if self.kind not in ("unicast", "local"):
            return f"{self.dst}: {self.kind} ({self.error})"
        hop = f"via {self.via} " if self.via else ""
        return f"{self.dst}: {hop}dev {self.dev}  [matched {self.matched}]"


def route_decision(host: Any, dst: str, *, src: str | None = None, iif: str | None = None) -> RouteDecision:
    """Ask `host`'s kernel how it would route a packet to `dst` (from `src`, arriving on `iif`)."""
    extra = (["from", src] if src else []) + (["iif", iif] if iif else [])
    res = host.run(["ip", "-j", "route", "get", dst, *extra])
    if not res.ok:
        err = res.stderr.strip().removeprefix("RTNETLINK answers: ").strip()
        return RouteDecision(dst, ROUTE_ERRORS.get(err, "error"), error=err)
    info = json.loads(res.stdout)[0]
    kind = "local" if info.get("type") == "local" or info.get("dev") == "lo" else "unicast"
    fib = host.run(["ip", "route", "get", "fibmatch", dst, *extra])
    matched = fib.stdout.strip().splitlines()[0] if fib.ok and fib.stdout.strip() else None
    return RouteDecision(dst, kind, info.get("dev"), info.get("gateway"), info.get("prefsrc"), matched)


def routes(host: Any, table: str = "main") -> list[dict[str, Any]]:
    """``ip -j route show table <table>`` as a list of dicts."""
    return json.loads(host.run(["ip", "-j", "-4", "route", "show", "table", table], check=True).stdout or "[]")


def route_prefix(route: dict[str, Any]) -> ipaddress.IPv4Network:
    """The destination prefix of one route from `routes()` (IPv4 only, as `routes()` lists)."""
    dst = route["dst"]
    return ipaddress.IPv4Network("0.0.0.0/0" if dst == "default" else dst if "/" in dst else f"{dst}/32")


# --8<-- [start:lpm]
def longest_prefix_match(table: Sequence[dict[str, Any]], dst: str) -> dict[str, Any] | None:
    """The route of `table` the kernel would pick for `dst`: the longest matching prefix
    (ties broken by the lowest metric). Pure Python — compare it with route_decision()."""
    addr = ipaddress.ip_address(dst)
    candidates = [r for r in table if addr in route_prefix(r)]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (route_prefix(r).prefixlen, -int(r.get("metric", 0))))


# --8<-- [end:lpm]


def describe_route(route: dict[str, Any] | None) -> str:
    if route is None:
        return "(no route)"
    kind = route.get("type", "unicast")
    text = f"{route['dst']}" if route["dst"] != "default" else "default"
    if kind != "unicast":
        return f"{kind} {text}"
    if route.get("gateway"):
        text += f" via {route['gateway']}"
    return text + (f" dev {route['dev']}" if route.get("dev") else "")
