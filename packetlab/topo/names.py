"""Naming rules for lab resources, and the one check every root entry point makes on a name.

Every namespace a lab creates is called ``<lab>-<node>`` so its owner is
readable from the name (``osi-h1`` belongs to lab ``osi``), and every interface
name is checked against the kernel's IFNAMSIZ limit *before* anything is
created, so a long name fails early instead of halfway through a topology.

The tools that run as root (the firewall and load balancer CLIs and APIs, the
CNI plugin, `Host.sysctl`) take names from their users and turn them into
paths: ``/run/netns/<netns>``, ``/sys/fs/bpf/packetlab/<tool>/<netns>-<dev>``,
``/proc/sys/<key>``. A name is only a name if it cannot walk out of the
directory it is joined to, so every entry point checks it here first: no ``/``,
no leading dot, a short charset, a length limit. A namespace is then identified
by what it *is* (the device and inode of its namespace file, as ``ip netns
identify`` does), never by what it is called: the host's own network namespace
— PID 1's — is refused under any name unless the caller passes the explicit
host flag (``--allow-host`` / ``allow_host=True``), and so is a namespace that no
lab recorded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection

from packetlab.errors import NameTooLong, UsageError

IFNAMSIZ = 15  # usable characters in a Linux interface name (16 with the NUL)
NETNS_NAME_MAX = 64  # ours, not the kernel's: long enough for a runtime's cni-<uuid>, short enough to read
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SYSCTL = re.compile(r"^net(\.[A-Za-z0-9_-]+)+$")
HOST_NETNS = "/proc/1/ns/net"  # PID 1's network namespace: the host's own
# The inode the kernel reserves for the initial network namespace (PROC_NET_INIT_INO, fixed since
# Linux 6.17; older kernels number namespaces from 0xF0000000 up, so it never names another one).
# It identifies the host where PID 1's namespace file cannot be read (a sandbox denies it).
NET_INIT_INO = 0xEFFFFFF9
NetnsId = tuple[int, int]  # (st_dev, st_ino) of a namespace file: what a namespace *is*


class InvalidName(UsageError):
    """A name given to a tool is not a plain name (it has a '/', a leading dot, or odd characters)."""


class HostNamespace(UsageError):
    """The namespace asked for is the host's own (PID 1's), or one no lab created, and the host flag is not set."""


def check_name(name: str, what: str = "interface") -> str:
    """Return `name` if it is a valid interface/namespace component, else raise."""
    if not isinstance(name, str) or not name or not _VALID.match(name):
        raise InvalidName(
            f"invalid {what} name {name!r}",
            cause="names may contain letters, digits, '-', '_' and '.', and must start with a letter or digit "
            "(a '/' or a leading '.' would turn the name into a path)",
            fix="pick a short name such as 'h1' or 'sw'",
        )
    if len(name) > IFNAMSIZ:
        raise NameTooLong(
            f"{what} name {name!r} is {len(name)} characters long",
            cause=f"Linux interface names hold at most {IFNAMSIZ} characters (IFNAMSIZ)",
            fix="use shorter lab or node names (e.g. Lab('osi') with hosts 'h1', 'h2')",
        )
    return name


def check_netns_name(name: str) -> str:
    """Return `name` if it is a plain namespace name (a file name under /run/netns), else raise."""
    if not isinstance(name, str) or not _VALID.match(name) or len(name) > NETNS_NAME_MAX:
        raise InvalidName(
            f"invalid network namespace name {name!r}",
            cause=f"a namespace name is a file name under /run/netns: at most {NETNS_NAME_MAX} letters, digits, "
            "'-', '_' and '.', starting with a letter or digit (no '/': it would be a path)",
            fix="give the name as `ip netns list` shows it, e.g. --netns fw-admin",
        )
    return name


def namespace_name(lab: str, node: str) -> str:
    """The namespace for `node` of `lab`: ``<lab>-<node>``, length-checked."""
    return check_name(f"{lab}-{node}", "namespace")


def port_name(peer_node: str, peer_ifname: str) -> str:
    """Name of a switch port facing `peer_node`'s `peer_ifname` (mininet style ``h1-eth0``)."""
    return check_name(f"{peer_node}-{peer_ifname}")


# ---- namespaces by identity ------------------------------------------------------------------
def netns_id(path: str | int) -> NetnsId | None:
    """(device, inode) of a namespace file or open fd; None if it cannot be read."""
    try:
        st = os.fstat(path) if isinstance(path, int) else os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def host_netns_id() -> NetnsId | None:
    """The host's network namespace (PID 1's); None where it cannot be read (some sandboxes)."""
    return netns_id(HOST_NETNS)


def current_netns_id() -> NetnsId | None:
    """The network namespace this thread is in right now."""
    return netns_id("/proc/thread-self/ns/net")


def is_host_netns(ident: NetnsId | None) -> bool:
    """True if `ident` is the host's namespace (PID 1's, or the kernel's initial one).
    Fails closed: an identity that could not be read counts as the host's."""
    return ident is None or ident[1] == NET_INIT_INO or ident == host_netns_id()


def lab_namespaces() -> dict[str, str]:
    """{namespace: lab name} for every namespace a packetlab lab recorded."""
    from packetlab.topo.state import all_records

    return {ns: rec.lab for rec in all_records() for ns in rec.namespaces}


def check_namespace(
    name: str, *, allow_host: bool = False, labs: Collection[str] | None = None, tool: str = "the tool"
) -> str:
    """The one check before a root tool acts in namespace `name`: a plain name, an existing
    namespace, not the host's own (compared by inode, so no other name or bind mount of it
    passes), and one a lab created (`labs`: the lab namespaces, default: every lab record).
    `allow_host` (the user's explicit ``--allow-host``) lifts the last two. Returns `name`."""
    from packetlab.topo import netns

    check_netns_name(name)
    netns.require(name)
    if allow_host:
        return name
    if is_host_netns(netns_id(os.path.join(netns.NETNS_DIR, name))):
        raise HostNamespace(
            f"namespace {name!r} is the host's own network namespace (PID 1's)",
            cause=f"{netns.NETNS_DIR}/{name} is the same namespace as /proc/1/ns/net: {tool} would change "
            "this machine's own interfaces",
            fix="use a lab namespace (`ip netns list`), or add --allow-host (allow_host=True) if you mean the host",
        )
    if name not in (lab_namespaces() if labs is None else labs):
        raise HostNamespace(
            f"namespace {name!r} was not created by a packetlab lab",
            cause=f"{tool} only acts inside lab namespaces unless told otherwise",
            fix="use a lab namespace (`ip netns list`, names start with the lab's name), or add "
            "--allow-host (allow_host=True) if you know what this namespace carries",
        )
    return name


def check_sysctl_key(key: str) -> str:
    """Return `key` if it names a per-namespace network sysctl (``net.…``) without path tricks."""
    if not isinstance(key, str) or not _SYSCTL.match(key):
        raise InvalidName(
            f"refusing sysctl {key!r}",
            cause="a lab host only sets network sysctls (net.*), which belong to its own namespace; other keys "
            "(kernel.*, vm.*, fs.*) are global and would change the host",
            fix="use a key such as net.ipv4.ip_forward (dots between words, no '/')",
        )
    return key
