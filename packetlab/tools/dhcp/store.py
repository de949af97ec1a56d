"""The lease store: one SQLite file, the truth the kernel's cache is rebuilt from.

Why SQLite: a lease must survive a restart of the daemon (the subscriber keeps
using its address), each change must be durable before the ACK leaves, and
`packetlab dhcp leases` must read it while the daemon runs — SQLite in WAL mode
does all three with no server. Times are wall-clock seconds (``time.time()``).

A row per (MAC, VLAN). Its state is ``offered`` (reserved for `offer_hold`),
``bound`` (in the fast-path cache), ``released`` or ``expired`` (no longer in
use, but remembered, so the client gets the same address back while nobody else
needed it). Declined addresses sit in quarantine in their own table.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OFFERED, BOUND, RELEASED, EXPIRED = "offered", "bound", "released", "expired"
IN_USE = (OFFERED, BOUND)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    mac TEXT NOT NULL, vlan INTEGER NOT NULL, ip TEXT NOT NULL UNIQUE, pool TEXT NOT NULL,
    state TEXT NOT NULL, expires REAL NOT NULL, updated REAL NOT NULL, hostname TEXT,
    PRIMARY KEY (mac, vlan));
CREATE TABLE IF NOT EXISTS declined (ip TEXT PRIMARY KEY, until REAL NOT NULL);
"""


@dataclass
class LeaseRow:
    mac: str
    vlan: int
    ip: str
    pool: str
    state: str
    expires: float
    updated: float
    hostname: str | None = None

    def active(self, now: float) -> bool:
        return self.state in IN_USE and self.expires > now


class LeaseStore:
    """Leases by (MAC, VLAN) and by address, in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durable across a daemon crash; WAL keeps writes cheap
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _rows(self, sql: str, args: tuple = ()) -> list[LeaseRow]:
        return [LeaseRow(*r) for r in self.db.execute(sql, args).fetchall()]

    def get(self, mac: str, vlan: int) -> LeaseRow | None:
        rows = self._rows("SELECT * FROM leases WHERE mac=? AND vlan=?", (mac, vlan))
        return rows[0] if rows else None

    def by_ip(self, ip: str) -> LeaseRow | None:
        rows = self._rows("SELECT * FROM leases WHERE ip=?", (ip,))
        return rows[0] if rows else None

    def all(self) -> list[LeaseRow]:
        return self._rows("SELECT * FROM leases ORDER BY pool, ip")

    def bound(self) -> list[LeaseRow]:
        return self._rows("SELECT * FROM leases WHERE state=?", (BOUND,))

    def put(self, row: LeaseRow) -> None:
        """Insert or replace the client's row (another client's row holding that address goes)."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM leases WHERE ip=? AND NOT (mac=? AND vlan=?)", (row.ip, row.mac, row.vlan))
            self.db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?,?,?)",
                (row.mac, row.vlan, row.ip, row.pool, row.state, row.expires, row.updated, row.hostname),
            )

    def set_state(self, mac: str, vlan: int, state: str, expires: float | None = None) -> None:
        if expires is None:
            self.db.execute(
                "UPDATE leases SET state=?, updated=? WHERE mac=? AND vlan=?", (state, time.time(), mac, vlan)
            )
        else:
            self.db.execute(
                "UPDATE leases SET state=?, expires=?, updated=? WHERE mac=? AND vlan=?",
                (state, expires, time.time(), mac, vlan),
            )

    def delete(self, mac: str, vlan: int) -> None:
        self.db.execute("DELETE FROM leases WHERE mac=? AND vlan=?", (mac, vlan))

    def reclaimable(self, pool: str, now: float) -> Iterator[LeaseRow]:
        """Rows whose address may go to another client, longest unused first."""
        yield from self._rows(
            "SELECT * FROM leases WHERE pool=? AND (state IN (?,?) OR expires<=?) ORDER BY updated",
            (pool, RELEASED, EXPIRED, now),
        )

    def due(self, now: float) -> list[LeaseRow]:
        """Offered or bound leases whose time is up."""
        return self._rows("SELECT * FROM leases WHERE state IN (?,?) AND expires<=?", (OFFERED, BOUND, now))

    def decline(self, ip: str, until: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO declined VALUES (?,?)", (ip, until))

    def declined(self, now: float) -> set[str]:
        """Addresses still in quarantine (a read: expired rows are simply not returned)."""
        return {r[0] for r in self.db.execute("SELECT ip FROM declined WHERE until>?", (now,))}

    def counts(self) -> dict[tuple[str, str], int]:
        """{(pool, state): number of rows}."""
        return {(p, s): n for p, s, n in self.db.execute("SELECT pool, state, COUNT(*) FROM leases GROUP BY 1, 2")}
