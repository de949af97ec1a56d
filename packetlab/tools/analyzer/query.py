"""`packetlab analyze query`: a small filter-and-aggregate language, compiled to SQL with parameters.

    proto=tcp app=http src=10.11.0.0/24 dport=1-1024 since=-10m flags=S noflags=A
    group=src,dst sort=ports top=5

Terms are ANDed. ``src``/``dst``/``host`` take an address or CIDR block, ports a number
or a range, ``since``/``until`` a Unix time, an ISO time or ``-N[smhd]`` (ago),
``flags``/``noflags`` TCP flag letters (FSRPAUEC) that were / were never seen.
``group`` aggregates (flows, packets, bytes, distinct ports and peers per group),
``sort`` orders by one of those (descending), ``top``/``limit`` cuts. Values are
passed to SQLite as parameters, never pasted into the SQL.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from packetlab.errors import InputError
from packetlab.tools.analyzer.records import PROTO_NUMBERS
from packetlab.tools.analyzer.store import FLOW_COLUMNS, FlowStore, flow_row, network_range

GROUPS = {"src", "dst", "sport", "dport", "proto", "app", "state"}
AGGREGATES = {
    "flows": "count(*)",
    "packets": "sum(packets)",
    "bytes": "sum(bytes)",
    "ports": "count(DISTINCT dport)",
    "peers": "count(DISTINCT dst)",
    "first": "min(first)",
    "last": "max(last)",
}
FLAG_BITS = {c: 1 << i for i, c in enumerate("FSRPAUEC")}
_AGO = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
HELP = __doc__ or ""


@dataclass
class Query:
    where: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    group: list[str] = field(default_factory=list)
    sort: str = ""
    limit: int | None = None

    def sql(self) -> tuple[str, list[Any]]:
        where = (" WHERE " + " AND ".join(self.where)) if self.where else ""
        if self.group:
            cols = ", ".join(self.group)
            aggs = ", ".join(f"{expr} AS {name}" for name, expr in AGGREGATES.items())
            order = f" ORDER BY {self.sort or 'bytes'} DESC, {cols}"
            sql = f"SELECT {cols}, {aggs} FROM flows{where} GROUP BY {cols}{order}"
        else:
            order = f" ORDER BY {self.sort} DESC" if self.sort else " ORDER BY first, id"
            sql = f"SELECT * FROM flows{where}{order}"
        if self.limit is not None:
            sql += f" LIMIT {int(self.limit)}"
        return sql, self.params


def _refuse(term: str, why: str) -> InputError:
    return InputError(f"cannot read query term {term!r}", cause=why, fix="see `packetlab analyze query --help`")


def parse_time(text: str, now: float | None = None) -> float:
    m = _AGO.match(text)
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _refuse(text, "not a Unix time, an ISO time or -N[smhd]") from None
    return (when if when.tzinfo else when.astimezone()).timestamp()


def _ports(term: str, value: str) -> tuple[int, int]:
    lo, _, hi = value.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        raise _refuse(term, "a port is a number or a range like 1-1024") from None
    if not 0 <= a <= b <= 65535:
        raise _refuse(term, "ports are 0..65535, low-high")
    return a, b


def _flags(term: str, value: str) -> int:
    bits = 0
    for c in value.upper():
        if c not in FLAG_BITS:
            raise _refuse(term, f"{c!r} is not a TCP flag letter (FSRPAUEC)")
        bits |= FLAG_BITS[c]
    return bits


def compile_query(text: str, now: float | None = None) -> Query:
    q = Query()
    try:
        terms = shlex.split(text)
    except ValueError as exc:
        raise _refuse(text, f'{exc} (quote a value with spaces like app="a b")') from None
    for term in terms:
        name, eq, value = term.partition("=")
        if not eq or not value:
            raise _refuse(term, "every term is name=value")
        name = name.lower()
        if name == "proto":
            if not value.isdigit() and value.lower() not in PROTO_NUMBERS:
                raise _refuse(term, f"use a number or one of {', '.join(PROTO_NUMBERS)}")
            q.where.append("proto = ?")
            q.params.append(int(value) if value.isdigit() else PROTO_NUMBERS[value.lower()])
        elif name in ("app", "state"):
            q.where.append(f"{name} = ?")
            q.params.append(value.lower() if name == "app" else value)
        elif name in ("src", "dst"):
            lo, hi = network_range(value)
            q.where.append(f"{name}_key BETWEEN ? AND ?")
            q.params += [lo, hi]
        elif name == "host":
            lo, hi = network_range(value)
            q.where.append("(src_key BETWEEN ? AND ? OR dst_key BETWEEN ? AND ?)")
            q.params += [lo, hi, lo, hi]
        elif name in ("sport", "dport", "port"):
            a, b = _ports(term, value)
            if name == "port":
                q.where.append("(sport BETWEEN ? AND ? OR dport BETWEEN ? AND ?)")
                q.params += [a, b, a, b]
            else:
                q.where.append(f"{name} BETWEEN ? AND ?")
                q.params += [a, b]
        elif name == "since":
            q.where.append("last >= ?")
            q.params.append(parse_time(value, now))
        elif name == "until":
            q.where.append("first <= ?")
            q.params.append(parse_time(value, now))
        elif name == "flags":
            bits = _flags(term, value)
            q.where.append("(tcp_flags & ?) = ?")
            q.params += [bits, bits]
        elif name == "noflags":
            q.where.append("(tcp_flags & ?) = 0")
            q.params.append(_flags(term, value))
        elif name in ("min_bytes", "min_packets"):
            q.where.append(f"{name[4:]} >= ?")
            q.params.append(int(value))
        elif name == "group":
            cols = [c.strip().lower() for c in value.split(",") if c.strip()]
            bad = [c for c in cols if c not in GROUPS]
            if bad:
                raise _refuse(term, f"cannot group by {', '.join(bad)}; use {', '.join(sorted(GROUPS))}")
            q.group = cols
        elif name == "sort":
            q.sort = value.lower()
        elif name in ("top", "limit"):
            if not value.isdigit():
                raise _refuse(term, "a count is a whole number")
            q.limit = int(value)
        else:
            raise _refuse(term, f"unknown term {name!r}")
    allowed = set(AGGREGATES) | set(q.group) if q.group else set(FLOW_COLUMNS)
    if q.sort and q.sort not in allowed:
        raise _refuse(f"sort={q.sort}", f"sort by one of {', '.join(sorted(allowed))}")
    return q


def run_query(store: FlowStore, text: str, now: float | None = None) -> list[dict]:
    """Rows for `text`: flows (as display rows) or, with group=, one row per group."""
    q = compile_query(text, now)
    sql, params = q.sql()
    rows = store.db.execute(sql, params).fetchall()
    return [dict(r) for r in rows] if q.group else [flow_row(r) for r in rows]
