"""The packetlab CNI plugin (``"type": "packetlab"``): give a pod a veth into the node.

A container runtime (kubelet via containerd/CRI-O, podman, ``ctr run --cni``)
executes this program with CNI_* environment variables and the network
configuration on stdin, once per pod and command (CNI spec 1.0):

* ADD    — create the pod's interface, get an address from the IPAM plugin, print a result
* DEL    — remove it again; idempotent, works with an empty CNI_NETNS
* CHECK  — verify the pod still looks like the prevResult the runtime passes in
* VERSION — say which spec versions we speak

Two node-side layouts, chosen with ``"mode"``:

* ``bridge`` (default) — the node end of every pod's veth is a port of one bridge
  (``"bridge": "plbr0"``) that carries the pods' gateway address, like the
  reference ``bridge`` plugin and flannel's ``cni0``.
* ``routed`` — no bridge: the pod gets a /32 and a default route via 169.254.1.1;
  the node answers ARP for that address with proxy ARP on the pod's veth and
  routes to each pod with a /32 route (Calico's layout).

Addresses come from the IPAM plugin named in ``"ipam": {"type": ...}``: the
reference ``host-local``, or ``packetlab-ipam`` (packetlab.tools.cni.ipam). Every
failure after the first change is rolled back (veth deleted, lease released)
before the error is printed, so a pod is never left half configured.

Safety for the course: the plugin treats its *current* namespace as the node,
so it refuses to act unless that namespace is a named one under /run/netns (a
lab node) — never the host's — unless the configuration says
``"allowRootNamespace": true`` (the real-cluster recipe in the lesson does).
In the labs it is always executed inside a lab's node namespace.

Exit codes follow the CNI specification, not the convention of the ``packetlab``
commands (`packetlab.errors.EXIT_CODES`): a runtime executes the plugin and reads
its stdout, so success is 0 with the result on stdout, and every failure is a
non-zero exit (1) with a CNI error object on stdout whose ``code`` says what went
wrong (1-99 the specification's, 100 and up ours, see `spec`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from typing import Any

from packetlab.errors import PacketlabError
from packetlab.tools.cni import invoke, wiring
from packetlab.tools.cni.spec import (
    CHECK_FAILED,
    CURRENT_VERSION,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    SUPPORTED_VERSIONS,
    UNKNOWN_CONTAINER,
    UNSUPPORTED_FIELD,
    CniError,
    Environment,
    check_version,
    convert_result,
    parse_config,
    version_result,
)
from packetlab.topo.names import check_name

MODES = ("bridge", "routed")
DEFAULT_BRIDGE = "plbr0"


class NetConf:
    """The validated network configuration for this plugin."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.raw = conf
        self.version = check_version(conf)
        self.name = conf.get("name")
        if not isinstance(self.name, str) or not self.name:
            raise CniError(INVALID_CONFIG, 'the network configuration has no "name"')
        self.mode = conf.get("mode", "bridge")
        if self.mode not in MODES:
            raise CniError(INVALID_CONFIG, f"unknown mode {self.mode!r}", 'use "bridge" or "routed"')
        bridge = conf.get("bridge", DEFAULT_BRIDGE)
        try:
            check_name(bridge, "bridge")
        except PacketlabError as exc:
            raise CniError(
                INVALID_CONFIG, f"bridge name {bridge!r} is not a valid interface name", exc.cause or ""
            ) from None
        self.bridge: str = bridge
        self.is_gateway = bool(conf.get("isGateway", True))
        self.mtu = conf.get("mtu", 1500)
        if not isinstance(self.mtu, int) or not 576 <= self.mtu <= 65535:
            raise CniError(INVALID_CONFIG, f"mtu {self.mtu!r} is out of range", "use 576..65535")
        if conf.get("ipMasq"):
            raise CniError(
                UNSUPPORTED_FIELD,
                "unsupported field ipMasq=true",
                "this plugin does no masquerading; chain the reference 'portmap'/'firewall' "
                "plugins or add an nftables rule on the node",
            )
        ipam = conf.get("ipam")
        if not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str):
            raise CniError(
                INVALID_CONFIG,
                'the network configuration needs "ipam": {"type": ...}',
                'e.g. {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]]}',
            )
        self.ipam: dict[str, Any] = ipam
        self.dns = conf.get("dns") or {}
        self.allow_root = bool(conf.get("allowRootNamespace", False))


# ---- IPAM delegation ------------------------------------------------------------------------
def ipam_exec(command: str, netconf: NetConf, env: Environment) -> dict[str, Any] | None:
    """Run the IPAM plugin with our CNI_* variables and our whole config (spec: delegation)."""
    executable = invoke.find_plugin(netconf.ipam["type"], env.path)
    config = {k: v for k, v in netconf.raw.items() if k != "prevResult"}
    penv = invoke.plugin_environment(
        command, container_id=env.container_id, netns=env.netns, ifname=env.ifname, path=env.path, args=env.raw_args
    )
    return invoke.exec_plugin(executable, config, penv)


def _addresses(ipam: dict[str, Any]) -> list[tuple[Any, Any]]:
    out = []
    for ip in ipam.get("ips", []):
        iface = ipaddress.ip_interface(ip["address"])
        gw = ipaddress.ip_address(ip["gateway"]) if ip.get("gateway") else None
        out.append((iface, gw))
    if not out:
        raise CniError(INVALID_CONFIG, "the IPAM plugin returned no address")
    return out


# ---- commands ---------------------------------------------------------------------------------
def cmd_add(env: Environment, netconf: NetConf) -> dict[str, Any]:
    pod_fd = wiring.open_netns(env.netns)
    host = wiring.host_veth_name(env.container_id, env.ifname)
    ipam = ipam_exec("ADD", netconf, env)
    created = False
    try:
        addrs = _addresses(ipam or {})
        interfaces: list[dict[str, Any]] = []
        bridge_info = None
        if netconf.mode == "bridge":
            gws = [
                ipaddress.ip_interface(f"{gw}/{iface.network.prefixlen}")
                for iface, gw in addrs
                if gw is not None and netconf.is_gateway
            ]
            bridge_info = wiring.ensure_bridge(netconf.bridge, gws, netconf.mtu)
            if netconf.is_gateway and any(gw for _, gw in addrs if gw and gw.version == 4):
                wiring.write_sysctl("net.ipv4.ip_forward", 1)
            interfaces.append(bridge_info)
        else:
            if any(iface.version == 6 for iface, _ in addrs):
                raise CniError(
                    INVALID_CONFIG, "routed mode supports IPv4 addresses only", "use bridge mode for IPv6 ranges"
                )
            wiring.ensure_gateway_route()
        wiring.create_veth(host, pod_fd, env.ifname, netconf.mtu)
        created = True
        routed_ips = [iface.ip for iface, _ in addrs] if netconf.mode == "routed" else []
        interfaces.append(
            wiring.configure_host_side(host, bridge=netconf.bridge if bridge_info else None, routed_ips=routed_ips)
        )
        pod_index = len(interfaces)
        if netconf.mode == "bridge":
            pod_addrs = [iface for iface, _ in addrs]
            routes = []
            for route in (ipam or {}).get("routes", []):
                dst = ipaddress.ip_network(route["dst"], strict=False)
                gw = route.get("gw") or next((str(g) for i, g in addrs if g and g.version == dst.version), None)
                routes.append({"dst": str(dst), **({"gw": gw} if gw else {})})
            onlink = None
            ips = [
                {"address": str(iface), "interface": pod_index, **({"gateway": str(gw)} if gw else {})}
                for iface, gw in addrs
            ]
        else:
            pod_addrs = [ipaddress.ip_interface(f"{iface.ip}/32") for iface, _ in addrs]
            onlink = wiring.ROUTED_GATEWAY
            extra = [
                r
                for r in (ipam or {}).get("routes", [])
                if ipaddress.ip_network(r["dst"], strict=False) != ipaddress.ip_network("0.0.0.0/0")
            ]
            routes = [{"dst": "0.0.0.0/0", "gw": onlink}] + [{"dst": r["dst"], "gw": onlink} for r in extra]
            ips = [{"address": str(a), "interface": pod_index, "gateway": onlink} for a in pod_addrs]
        mac = wiring.configure_pod_side(pod_fd, env.ifname, pod_addrs, routes, onlink)
        interfaces.append({"name": env.ifname, "mac": mac, "sandbox": env.netns})
    except BaseException as exc:
        # roll back everything this ADD did, then report the original error
        if created:
            try:
                wiring.delete_host_veth(host)
            except CniError:
                pass
        try:
            wiring.delete_pod_interface(pod_fd, env.ifname) if created else None
        except CniError:
            pass
        try:
            ipam_exec("DEL", netconf, env)
        except CniError:
            pass
        if isinstance(exc, CniError):
            raise
        raise CniError(wiring.SETUP_FAILED, f"unexpected failure while wiring the pod: {exc!r}") from exc
    finally:
        os.close(pod_fd)
    result: dict[str, Any] = {"cniVersion": netconf.version, "interfaces": interfaces, "ips": ips, "routes": routes}
    dns = netconf.dns or (ipam or {}).get("dns") or {}
    if dns:
        result["dns"] = dns
    return convert_result(result, netconf.version)


def cmd_del(env: Environment, netconf: NetConf) -> None:
    """Remove whatever exists of this pod's network; missing pieces are not errors."""
    wiring.delete_host_veth(wiring.host_veth_name(env.container_id, env.ifname))
    if env.netns:
        try:
            fd = wiring.open_netns(env.netns)
        except CniError as exc:
            if exc.code != UNKNOWN_CONTAINER:
                raise  # the node's or the host's namespace: refused, nothing deleted
            fd = None  # the pod's namespace is already gone: fine
        if fd is not None:
            try:
                wiring.delete_pod_interface(fd, env.ifname)
            finally:
                os.close(fd)
    ipam_exec("DEL", netconf, env)


def cmd_check(env: Environment, netconf: NetConf) -> None:
    """Compare the live pod and node with prevResult; any difference is error 102."""
    if SUPPORTED_VERSIONS.index(netconf.version) < SUPPORTED_VERSIONS.index("0.4.0"):
        raise CniError(
            INCOMPATIBLE_VERSION, f"CHECK is not defined for cniVersion {netconf.version}", "CHECK exists since 0.4.0"
        )
    prev = netconf.raw.get("prevResult")
    if not isinstance(prev, dict):
        raise CniError(
            INVALID_CONFIG,
            "CHECK needs prevResult in the configuration",
            "the runtime passes the cached result of ADD as prevResult",
        )
    ifaces = prev.get("interfaces", [])
    mine = [i for i, iface in enumerate(ifaces) if iface.get("name") == env.ifname and iface.get("sandbox")]
    if not mine:
        raise CniError(CHECK_FAILED, f"prevResult has no sandbox interface called {env.ifname}")
    fd = wiring.open_netns(env.netns)
    try:
        live = wiring.pod_state(fd, env.ifname)
    finally:
        os.close(fd)
    if live is None:
        raise CniError(CHECK_FAILED, f"the pod has no interface {env.ifname}")
    if not live["up"]:
        raise CniError(CHECK_FAILED, f"{env.ifname} in the pod is down")
    want_mac = ifaces[mine[0]].get("mac")
    if want_mac and want_mac.lower() != (live["mac"] or "").lower():
        raise CniError(CHECK_FAILED, f"{env.ifname} has MAC {live['mac']}, prevResult says {want_mac}")
    for ip in prev.get("ips", []):
        if ip.get("interface") in mine and ip["address"] not in live["addresses"]:
            raise CniError(
                CHECK_FAILED, f"{env.ifname} lacks address {ip['address']}", f"it has {sorted(live['addresses'])}"
            )
    for route in prev.get("routes", []):
        dst = str(ipaddress.ip_network(route["dst"], strict=False))
        if not any(d == dst and (not route.get("gw") or g == route["gw"]) for d, g in live["routes"]):
            raise CniError(
                CHECK_FAILED, f"the pod lacks the route {dst}" + (f" via {route['gw']}" if route.get("gw") else "")
            )
    host = wiring.host_state(wiring.host_veth_name(env.container_id, env.ifname))
    if host is None or not host["up"]:
        raise CniError(CHECK_FAILED, "the node side of the pod's veth is missing or down")
    if netconf.mode == "bridge" and host["master"] != netconf.bridge:
        raise CniError(
            CHECK_FAILED, f"the pod's veth is not a port of bridge {netconf.bridge}", f"its master is {host['master']}"
        )
    if netconf.mode == "routed":
        for ip in prev.get("ips", []):
            if ip.get("interface") in mine and f"{ip['address'].split('/')[0]}/32" not in host["routes"]:
                raise CniError(CHECK_FAILED, f"the node has no /32 route to {ip['address']} via the pod's veth")
    ipam_exec("CHECK", netconf, env)


def run(env: Environment, raw: bytes) -> dict[str, Any] | None:
    """One invocation, as pure as it gets: env + stdin in, result (or CniError) out."""
    if env.command == "VERSION":
        return version_result()
    conf = parse_config(raw)
    netconf = NetConf(conf)
    why = None if netconf.allow_root else wiring.node_namespace_check()
    if why:
        raise CniError(
            INVALID_CONFIG,
            "refusing to act as a node here: " + why,
            "run the plugin inside a lab node namespace (nsenter --net=/run/netns/<node>), "
            'or set "allowRootNamespace": true on a real node',
        )
    if env.command == "ADD":
        return cmd_add(env, netconf)
    if env.command == "DEL":
        cmd_del(env, netconf)
        return None
    cmd_check(env, netconf)
    return None


def main() -> int:
    """Executable entry point (``packetlab-cni``, or a CNI_PATH wrapper named ``packetlab``)."""
    version = CURRENT_VERSION
    raw = b""
    try:
        raw = sys.stdin.buffer.read()
        with_version = _peek_version(raw)
        if with_version in SUPPORTED_VERSIONS:
            version = with_version
        env = Environment.from_environ()
        out = run(env, raw)
    except CniError as exc:
        sys.stdout.write(json.dumps(exc.to_dict(version)) + "\n")
        return 1
    except Exception as exc:  # never a bare traceback: the runtime only reads stdout
        sys.stdout.write(json.dumps(CniError(wiring.SETUP_FAILED, f"internal error: {exc!r}").to_dict(version)) + "\n")
        return 1
    if out is not None:
        sys.stdout.write(json.dumps(out) + "\n")
    return 0


def _peek_version(raw: bytes) -> str | None:
    try:
        conf = json.loads(raw or b"{}")
        return conf.get("cniVersion") if isinstance(conf, dict) else None
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
