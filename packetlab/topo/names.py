"""Naming rules for lab resources.

Every namespace a lab creates is called ``<lab>-<node>`` so its owner is
readable from the name (``osi-h1`` belongs to lab ``osi``), and every interface
name is checked against the kernel's IFNAMSIZ limit *before* anything is
created, so a long name fails early instead of halfway through a topology.
"""

from __future__ import annotations

import re

from packetlab.errors import NameTooLong, PacketlabError

IFNAMSIZ = 15  # usable characters in a Linux interface name (16 with the NUL)
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_name(name: str, what: str = "interface") -> str:
    """Return `name` if it is a valid interface/namespace component, else raise."""
    if not name or not _VALID.match(name):
        raise PacketlabError(
            f"invalid {what} name {name!r}",
            cause="names may contain letters, digits, '-', '_' and '.', and must start with a letter or digit",
            fix="pick a short name such as 'h1' or 'sw'",
        )
    if len(name) > IFNAMSIZ:
        raise NameTooLong(
            f"{what} name {name!r} is {len(name)} characters long",
            cause=f"Linux interface names hold at most {IFNAMSIZ} characters (IFNAMSIZ)",
            fix="use shorter lab or node names (e.g. Lab('osi') with hosts 'h1', 'h2')",
        )
    return name


def namespace_name(lab: str, node: str) -> str:
    """The namespace for `node` of `lab`: ``<lab>-<node>``, length-checked."""
    return check_name(f"{lab}-{node}", "namespace")


def port_name(peer_node: str, peer_ifname: str) -> str:
    """Name of a switch port facing `peer_node`'s `peer_ifname` (mininet style ``h1-eth0``)."""
    return check_name(f"{peer_node}-{peer_ifname}")
