"""Dispatch ``python -m packetlab.bench NAME [args]`` to packetlab.bench.NAME.main."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import packetlab.bench as bench


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in names:
        print("usage: python -m packetlab.bench {" + ",".join(names) + "} [options]")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return int(importlib.import_module(f"packetlab.bench.{argv[0]}").main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
