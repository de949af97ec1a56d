"""Module 10's lab helpers: what its notebook and checks call besides the checks themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


def web_requirement(src, dst, port: int, proto: str) -> bool:
    """Exercise 2: shop's web pods accept only TCP 'http' (80) from shop pods labelled app=client."""
    if not (dst.namespace == "shop" and dst.labels.get("app") == "web"):
        return True
    return src.namespace == "shop" and src.labels.get("app") == "client" and (port, proto) == (80, "TCP")


def egress_requirement(src, dst, port: int, proto: str) -> bool:
    """Exercise 3: pods in 'other' may only reach shop's web pods, on TCP 80."""
    if src.namespace != "other":
        return True
    return dst.namespace == "shop" and dst.labels.get("app") == "web" and (port, proto) == (80, "TCP")
