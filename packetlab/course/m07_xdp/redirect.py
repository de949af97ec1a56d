"""XDP_REDIRECT plumbing for module 07: interface indexes and devmap entries."""

from __future__ import annotations

import ctypes
from typing import Any

from packetlab.ebpf.live_frames import assert_in_namespace
from packetlab.errors import PacketlabError
from packetlab.topo import netns


# ---- small lab utilities ---------------------------------------------------------------
def ifindex(host: Any, dev: str) -> int:
    """Interface index of `dev` inside `host`'s namespace."""
    from packetlab.topo.rtnl import iproute

    with iproute(netns=host.namespace) as ipr:
        found = ipr.link_lookup(ifname=dev)
    if not found:
        raise PacketlabError(f"no interface {dev!r} in {host.namespace}", fix=f"list them with {host.name}.ip('link')")
    return found[0]


def devmap_set(attachment: Any, from_dev: str, to_dev: str, *, map_name: str = "tx_port") -> tuple[int, int]:
    """``tx_port[ifindex(from_dev)] = ifindex(to_dev)`` in the attachment's namespace.

    A devmap stores interfaces by index, and the kernel resolves the index in
    the namespace of the process that writes the entry, so the update is made
    from inside the lab namespace (never from the root namespace, where the
    same number names a different interface).
    """
    ns = attachment.namespace
    from packetlab.topo.rtnl import iproute

    with iproute(netns=ns) as ipr:
        src, dst = ipr.link_lookup(ifname=from_dev), ipr.link_lookup(ifname=to_dev)
    if not src or not dst:
        missing = from_dev if not src else to_dev
        raise PacketlabError(f"no interface {missing!r} in {ns}", fix=f"list them with: ip -n {ns} link")
    with netns.entered(ns):
        assert_in_namespace(ns)
        try:
            attachment[map_name][ctypes.c_int(src[0])] = ctypes.c_int(dst[0])
        except Exception as exc:  # bcc raises a bare Exception
            raise PacketlabError(
                f"cannot store {to_dev} in {map_name}[{from_dev}]",
                cause=str(exc),
                fix="keys must be below the devmap's max_entries; the target must exist",
            ) from None
    return src[0], dst[0]


def devmap_get(attachment: Any, from_dev: str, *, map_name: str = "tx_port") -> str | None:
    """The egress interface stored for `from_dev` in the devmap (None if no entry)."""
    import socket

    ns = attachment.namespace
    with netns.entered(ns):
        try:
            key = socket.if_nametoindex(from_dev)
        except OSError:
            raise PacketlabError(f"no interface {from_dev!r} in {ns}", fix=f"list them with: ip -n {ns} link") from None
        try:
            value = attachment[map_name][ctypes.c_int(key)]
        except KeyError:
            return None
        idx = int(getattr(value, "value", value))
        try:
            return socket.if_indextoname(idx) if idx else None
        except OSError:
            return f"ifindex {idx} (no such interface here)"
