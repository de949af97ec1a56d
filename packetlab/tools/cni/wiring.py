"""The kernel work of the plugin: a veth pair between the node and a pod,
addresses and routes inside the pod, the node-side bridge or routes.

Who is who: the plugin process runs in the *node's* network namespace (a
runtime calls plugins from its own namespace), so "here" is the node; the pod
is the namespace file named by CNI_NETNS. Netlink sockets are opened inside the
pod namespace by briefly entering it with setns(2) (on the toolkit's netlink thread) — the socket stays bound to
the namespace it was created in — and nothing is ever created anywhere else.

Each function here does one step and raises; `packetlab.tools.cni.plugin` orders the
steps and rolls back what was done when a later step fails.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import os
from collections.abc import Iterator
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from packetlab.tools.cni.spec import INVALID_CONFIG, INVALID_ENVIRONMENT, SETUP_FAILED, UNKNOWN_CONTAINER, CniError
from packetlab.topo.names import current_netns_id, is_host_netns, netns_id
from packetlab.topo.rtnl import IPRouteOnThread, iproute

IFA_F_NODAD = 0x02
ROUTED_GATEWAY = "169.254.1.1"  # the pods' next hop in routed mode (answered by proxy ARP)


def host_veth_name(container_id: str, ifname: str) -> str:
    """The node-side veth name: derived from (container, ifname), so DEL finds it even
    without CNI_NETNS, and 'pl' marks it as ours in ``ip link`` (13 characters)."""
    return "pl" + hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()[:11]


def bridge_mac(name: str) -> str:
    """A stable, locally administered unicast MAC for the node bridge."""
    digest = hashlib.sha256(f"bridge/{name}".encode()).hexdigest()
    return "02:" + ":".join(digest[i : i + 2] for i in range(0, 10, 2))


def open_netns(path: str) -> int:
    """An fd on the pod's namespace file; error 3 if it does not exist, error 4 if it is not a pod's.

    The pod's namespace is compared by identity (device and inode of the open file) with
    the node's (this thread's) and the host's (PID 1's): a CNI_NETNS naming either, under
    any path, is refused before anything is created in it or deleted from it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CniError(
            UNKNOWN_CONTAINER,
            f"the network namespace {path} does not exist",
            "CNI_NETNS must name the pod's namespace file (/run/netns/<name> or /proc/<pid>/ns/net)",
        ) from None
    except OSError as exc:
        raise CniError(UNKNOWN_CONTAINER, f"cannot open the network namespace {path}", str(exc)) from None
    pod = netns_id(fd)
    why = None
    if is_host_netns(pod):
        why = "it is the host's own network namespace (PID 1's)"
    elif pod == current_netns_id():
        why = "it is the node's own network namespace (where the plugin runs)"
    if why:
        os.close(fd)
        raise CniError(
            INVALID_ENVIRONMENT,
            f"refusing CNI_NETNS={path}: {why}",
            "CNI_NETNS must be the pod's own namespace, created for the pod by the runtime",
        )
    return fd


@contextlib.contextmanager
def netlink_in(ns_fd: int | None) -> Iterator[IPRouteOnThread]:
    """An rtnetlink socket bound to namespace `ns_fd` (None: the node, i.e. here).

    The socket is created by the toolkit's netlink thread, which enters the pod's
    namespace for that moment only (this thread never leaves the node's)."""
    try:
        ipr = iproute(ns_fd)
    except OSError as exc:
        raise CniError(
            UNKNOWN_CONTAINER, "cannot enter the pod's network namespace", exc.strerror or str(exc)
        ) from None
    try:
        yield ipr
    finally:
        ipr.close()


def node_namespace_check() -> str | None:
    """Why this process must not act as a node (None: it may).

    Fail closed: the plugin acts on its *current* namespace as the node, so it only
    proceeds when that namespace is a named one (a file under /run/netns, like every
    lab node) and is not PID 1's. Where PID 1's namespace cannot be read (some
    sandboxes deny it), being unnamed is already enough to refuse.
    """
    here = current_netns_id()
    if here is None:
        return "cannot identify the current network namespace"
    if is_host_netns(here):
        return "this is the host's root network namespace (PID 1's)"
    try:
        for entry in os.scandir("/run/netns"):
            if netns_id(entry.path) == here:
                return None
    except FileNotFoundError:
        pass
    return "the current network namespace is not a named (lab node) namespace under /run/netns"


def write_sysctl(key: str, value: Any) -> None:
    """Set a sysctl of the namespace this process is in (the node)."""
    path = "/proc/sys/" + key.replace(".", "/")
    with open(path, "w") as f:
        f.write(str(value))


def _index(ipr: IPRouteOnThread, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _fail(step: str, exc: Exception) -> CniError:
    code = getattr(exc, "code", None)
    cause = f"{os.strerror(code)} (errno {code})" if isinstance(code, int) and code > 0 else str(exc)
    return CniError(SETUP_FAILED, f"{step} failed", cause)


# ---- node side --------------------------------------------------------------------------
def ensure_bridge(
    name: str, gateways: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface], mtu: int
) -> dict[str, str]:
    """The node's pod bridge, created on first use, carrying the pods' gateway address."""
    with netlink_in(None) as ipr:
        idx = _index(ipr, name)
        if idx is None:
            try:
                # A fixed MAC: a bridge without one takes the lowest MAC of its ports, so it
                # would change whenever a pod leaves — and every pod's ARP entry for the
                # gateway would point at a MAC nobody answers to for a while.
                ipr.link("add", ifname=name, kind="bridge", address=bridge_mac(name))
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:  # another ADD created it a moment ago: fine
                    raise _fail(f"creating bridge {name}", exc) from None
            idx = _index(ipr, name)
        info = ipr.get_links(idx)[0].get_attr("IFLA_LINKINFO")
        if info is None or info.get_attr("IFLA_INFO_KIND") != "bridge":  # lo and NICs have no kind at all
            raise CniError(
                INVALID_CONFIG,
                f"{name} exists in the node namespace but is not a bridge",
                'pick another "bridge" name in the network configuration',
            )
        present = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx)}
        for gw in gateways:
            if (str(gw.ip), gw.network.prefixlen) not in present:
                extra = {"flags": IFA_F_NODAD} if gw.version == 6 else {}
                try:
                    ipr.addr("add", index=idx, address=str(gw.ip), prefixlen=gw.network.prefixlen, **extra)
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise _fail(f"adding gateway {gw} to {name}", exc) from None
        ipr.link("set", index=idx, state="up", mtu=mtu)
        return {"name": name, "mac": ipr.get_links(idx)[0].get_attr("IFLA_ADDRESS")}


def ensure_gateway_route() -> None:
    """Routed mode: proxy ARP answers for 169.254.1.1 only if the node has a unicast route
    to it through *another* interface (arp_process() in net/ipv4/arp.c). A real node's
    default route is one; a node without one gets ``169.254.1.1/32 dev lo`` — a sink,
    since nothing is ever sent to that address itself, only ARP-resolved."""
    with netlink_in(None) as ipr:
        try:
            ipr.route("get", dst=ROUTED_GATEWAY)
            return
        except NetlinkError:
            pass
        try:
            ipr.route("replace", dst=f"{ROUTED_GATEWAY}/32", oif=_index(ipr, "lo"))
        except NetlinkError as exc:
            raise _fail("adding the route to the routed-mode gateway", exc) from None


def create_veth(host_name: str, pod_fd: int, pod_ifname: str, mtu: int) -> None:
    """One veth pair: `host_name` here, `pod_ifname` created directly inside the pod."""
    with netlink_in(None) as ipr:
        if _index(ipr, host_name) is not None:
            raise CniError(
                SETUP_FAILED,
                f"the node already has an interface {host_name} for this container",
                "ADD was called twice without DEL; call DEL first",
            )
        try:
            ipr.link(
                "add",
                ifname=host_name,
                kind="veth",
                mtu=mtu,
                peer={"ifname": pod_ifname, "net_ns_fd": pod_fd, "mtu": mtu},
            )
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                raise CniError(
                    SETUP_FAILED,
                    f"the pod already has an interface called {pod_ifname}",
                    "each ADD needs a free CNI_IFNAME in the pod",
                ) from None
            raise _fail(f"creating veth {host_name} <-> {pod_ifname}", exc) from None


def configure_host_side(host_name: str, *, bridge: str | None, routed_ips: list[Any]) -> dict[str, str]:
    """Bridge mode: enslave to the bridge. Routed mode: proxy ARP + a /32 route per pod IP."""
    with netlink_in(None) as ipr:
        idx = _index(ipr, host_name)
        if idx is None:
            raise CniError(SETUP_FAILED, f"{host_name} vanished while configuring it")
        try:
            if bridge:
                ipr.link("set", index=idx, master=_index(ipr, bridge))
            ipr.link("set", index=idx, state="up")
            if routed_ips:
                write_sysctl(f"net.ipv4.conf.{host_name}.proxy_arp", 1)
                write_sysctl(f"net.ipv4.neigh.{host_name}.proxy_delay", 0)  # answer at once (default: up to 0.8 s)
                write_sysctl("net.ipv4.ip_forward", 1)
                for ip in routed_ips:
                    ipr.route("replace", dst=f"{ip}/32", oif=idx, scope=253)  # scope link
        except (NetlinkError, OSError) as exc:
            raise _fail(f"configuring {host_name} on the node", exc) from None
        return {"name": host_name, "mac": ipr.get_links(idx)[0].get_attr("IFLA_ADDRESS")}


def configure_pod_side(
    pod_fd: int, ifname: str, addresses: list[Any], routes: list[dict[str, Any]], onlink_gateway: str | None
) -> str:
    """Inside the pod: addresses, link up, routes. Returns the interface's MAC."""
    with netlink_in(pod_fd) as ipr:
        idx = _index(ipr, ifname)
        if idx is None:
            raise CniError(SETUP_FAILED, f"{ifname} is missing in the pod right after creating it")
        try:
            lo = _index(ipr, "lo")
            if lo is not None:
                ipr.link("set", index=lo, state="up")
            for addr in addresses:
                extra = {"flags": IFA_F_NODAD} if addr.version == 6 else {}
                ipr.addr("add", index=idx, address=str(addr.ip), prefixlen=addr.network.prefixlen, **extra)
            ipr.link("set", index=idx, state="up")
            if onlink_gateway:
                ipr.route("add", dst=f"{onlink_gateway}/32", oif=idx, scope=253)
            for route in routes:
                dst = ipaddress.ip_network(route["dst"], strict=False)
                kw: dict[str, Any] = {"dst": str(dst.network_address), "dst_len": dst.prefixlen, "oif": idx}
                if dst.version == 6:
                    kw["family"] = 10
                if route.get("gw"):
                    kw["gateway"] = route["gw"]
                else:
                    kw["scope"] = 253
                ipr.route("replace", **kw)
        except NetlinkError as exc:
            raise _fail(f"configuring {ifname} in the pod", exc) from None
        return ipr.get_links(idx)[0].get_attr("IFLA_ADDRESS")


# ---- teardown and inspection ---------------------------------------------------------------
def delete_host_veth(host_name: str) -> bool:
    """Delete our node-side veth (its pod end goes with it). False if it was gone."""
    with netlink_in(None) as ipr:
        idx = _index(ipr, host_name)
        if idx is None:
            return False
        try:
            ipr.link("del", index=idx)
        except NetlinkError as exc:
            if exc.code in (errno.ENODEV, errno.ENOENT):
                return False
            raise _fail(f"deleting {host_name}", exc) from None
        return True


def delete_pod_interface(pod_fd: int, ifname: str) -> bool:
    """Delete a veth left in the pod (only a veth: never someone else's device)."""
    with netlink_in(pod_fd) as ipr:
        idx = _index(ipr, ifname)
        if idx is None:
            return False
        info = ipr.get_links(idx)[0].get_attr("IFLA_LINKINFO")
        if not info or info.get_attr("IFLA_INFO_KIND") != "veth":
            return False
        with contextlib.suppress(NetlinkError):
            ipr.link("del", index=idx)
        return True


def pod_state(pod_fd: int, ifname: str) -> dict[str, Any] | None:
    """What the pod's interface looks like now: mac, up, addresses, routes (for CHECK)."""
    with netlink_in(pod_fd) as ipr:
        idx = _index(ipr, ifname)
        if idx is None:
            return None
        link = ipr.get_links(idx)[0]
        addrs = {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=idx)}
        routes = set()
        for family in (2, 10):
            for r in ipr.get_routes(family=family, oif=idx):
                dst = r.get_attr("RTA_DST")
                dst = f"{dst}/{r['dst_len']}" if dst else ("0.0.0.0/0" if family == 2 else "::/0")
                routes.add((dst, r.get_attr("RTA_GATEWAY")))
        return {
            "mac": link.get_attr("IFLA_ADDRESS"),
            "up": bool(link["flags"] & 1),
            "addresses": addrs,
            "routes": routes,
        }


def host_state(host_name: str) -> dict[str, Any] | None:
    """The node-side veth: up, bridge master name, /32 routes through it."""
    with netlink_in(None) as ipr:
        idx = _index(ipr, host_name)
        if idx is None:
            return None
        link = ipr.get_links(idx)[0]
        master = link.get_attr("IFLA_MASTER")
        master_name = ipr.get_links(master)[0].get_attr("IFLA_IFNAME") if master else None
        routes = {
            f"{r.get_attr('RTA_DST')}/{r['dst_len']}"
            for r in ipr.get_routes(family=2, oif=idx)
            if r.get_attr("RTA_DST")
        }
        return {
            "up": bool(link["flags"] & 1),
            "master": master_name,
            "routes": routes,
            "mac": link.get_attr("IFLA_ADDRESS"),
        }
