"""The flow store: SQLite, one file, indexes for the questions an analyst asks.

Why SQLite: it ships with Python, needs no server, and its B-tree indexes answer
"flows in this time range", "to this subnet", "on these ports" without a scan.
Addresses are stored twice: as text (to read) and as a 16-byte key (IPv4 mapped
into IPv6), because SQLite compares BLOBs byte by byte — so a CIDR block is a
``BETWEEN`` over an index. Retention is by age (`prune`), as a collector's
expiry is.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from packetlab.errors import InputError
from packetlab.tools.analyzer.anomalies import Alert
from packetlab.tools.analyzer.records import PROTO_NUMBERS, FlowKey, FlowRecord, tcp_flag_str

SCHEMA = """
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY,
    first REAL NOT NULL, last REAL NOT NULL,
    proto INTEGER NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL, sport INTEGER NOT NULL, dport INTEGER NOT NULL,
    src_key BLOB NOT NULL, dst_key BLOB NOT NULL,
    packets INTEGER NOT NULL, bytes INTEGER NOT NULL, tcp_flags INTEGER NOT NULL,
    app TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS flows_time ON flows (first, last);
CREATE INDEX IF NOT EXISTS flows_last ON flows (last);
CREATE INDEX IF NOT EXISTS flows_src ON flows (src_key, sport);
CREATE INDEX IF NOT EXISTS flows_dst ON flows (dst_key, dport);
CREATE INDEX IF NOT EXISTS flows_proto ON flows (proto, dport);
CREATE INDEX IF NOT EXISTS flows_app ON flows (app);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL,
    first REAL NOT NULL, last REAL NOT NULL, threshold TEXT NOT NULL, evidence TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (first);
"""

FLOW_COLUMNS = (
    "first",
    "last",
    "proto",
    "src",
    "dst",
    "sport",
    "dport",
    "packets",
    "bytes",
    "tcp_flags",
    "app",
    "state",
)


def address_key(addr: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """16 bytes that sort like the address (IPv4 as ::ffff:a.b.c.d)."""
    ip = ipaddress.ip_address(addr)
    if ip.version == 4:
        return ipaddress.IPv6Address(f"::ffff:{ip}").packed
    return ip.packed


def network_range(cidr: str) -> tuple[bytes, bytes]:
    """The first and last address keys of a CIDR block (a single address is a /32 or /128)."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise InputError(f"{cidr!r} is not an address or CIDR block", cause=str(exc), fix="e.g. 10.11.0.0/24") from None
    return address_key(net.network_address), address_key(net.broadcast_address)


class FlowStore:
    """A SQLite flow store (`path` ':memory:' for a throwaway one)."""

    def __init__(self, path: str | os.PathLike = ":memory:") -> None:
        self.path = str(path)
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> FlowStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def add_flows(self, records: Iterable[FlowRecord], *, source: str = "") -> int:
        rows = [
            (
                r.first,
                r.last,
                r.key.proto,
                r.key.src,
                r.key.dst,
                r.key.sport,
                r.key.dport,
                address_key(r.key.src),
                address_key(r.key.dst),
                r.packets,
                r.bytes,
                r.tcp_flags,
                r.app,
                r.state,
                source,
            )
            for r in records
        ]
        with self.db:
            self.db.executemany(
                "INSERT INTO flows (first, last, proto, src, dst, sport, dport, src_key, dst_key, packets, bytes, "
                "tcp_flags, app, state, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def add_alerts(self, alerts: Iterable[Alert]) -> int:
        rows = [(a.kind, a.source, a.target, a.first, a.last, a.threshold, json.dumps(a.evidence)) for a in alerts]
        with self.db:
            self.db.executemany(
                "INSERT INTO alerts (kind, source, target, first, last, threshold, evidence) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def prune(self, max_age: float, now: float | None = None) -> int:
        """Delete flows and alerts whose last packet is older than `max_age` seconds; return how many flows."""
        cutoff = (time.time() if now is None else now) - max_age
        with self.db:
            n = self.db.execute("DELETE FROM flows WHERE last < ?", (cutoff,)).rowcount
            self.db.execute("DELETE FROM alerts WHERE last < ?", (cutoff,))
        return n

    def records(self, where: str = "", params: Iterable[Any] = ()) -> list[FlowRecord]:
        """Flows as records (``where`` is a SQL condition with ? parameters, from `query.compile_filter`)."""
        sql = "SELECT * FROM flows" + (f" WHERE {where}" if where else "") + " ORDER BY first, id"
        return [row_to_record(r) for r in self.db.execute(sql, tuple(params))]

    def alerts(self) -> list[dict]:
        rows = self.db.execute(
            "SELECT kind, source, target, first, last, threshold, evidence FROM alerts ORDER BY first"
        )
        return [{**dict(r), "evidence": json.loads(r["evidence"])} for r in rows]

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM flows").fetchone()[0])


def row_to_record(row: sqlite3.Row) -> FlowRecord:
    key = FlowKey(row["proto"], row["src"], row["dst"], row["sport"], row["dport"])
    return FlowRecord(
        key, row["packets"], row["bytes"], row["first"], row["last"], row["tcp_flags"], False, row["app"], row["state"]
    )


def flow_row(row: sqlite3.Row) -> dict:
    """A stored flow as a display row (protocol by name, flags as letters)."""
    d = {c: row[c] for c in FLOW_COLUMNS}
    names = {v: k for k, v in PROTO_NUMBERS.items()}
    d["proto"] = names.get(d["proto"], str(d["proto"]))
    d["tcp_flags"] = tcp_flag_str(d["tcp_flags"])
    return d
