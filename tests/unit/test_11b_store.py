"""Module 11b: the SQLite flow store, the query language, CSV/JSON/IPFIX export and the CLI (no kernel)."""

from __future__ import annotations

import json

import pytest

from packetlab.course.m11b_packet_analyzer import traces as T
from packetlab.errors import InputError
from packetlab.tools.analyzer.cli import main
from packetlab.tools.analyzer.export import MAX_MESSAGE, ipfix_messages, parse_ipfix, to_csv
from packetlab.tools.analyzer.inspector import inspect_frames
from packetlab.tools.analyzer.query import compile_query, run_query
from packetlab.tools.analyzer.records import FlowKey, FlowRecord
from packetlab.tools.analyzer.store import FlowStore


@pytest.fixture
def store():
    ins = inspect_frames(T.merge(T.normal_traffic(1000.0), T.port_scan(1005.0)))
    with FlowStore() as s:
        s.add_flows(ins.records())
        s.add_alerts(ins.alerts)
        yield s


def test_filters(store):
    http = run_query(store, "app=http proto=tcp dport=8080")
    assert len(http) == 10 and {r["app"] for r in http} == {"http"}
    assert all(r["tcp_flags"] == "FSPA" for r in http)
    assert len(run_query(store, "src=10.11.0.0/24 dst=10.11.0.53")) == 11  # the DNS queries
    assert run_query(store, "host=10.11.0.66 sport=50000")  # the scanner as a source
    assert run_query(store, "since=1004 until=1006 dport=1-10")
    assert not run_query(store, "src=192.0.2.0/24")


def test_aggregation_finds_the_scanner(store):
    rows = run_query(store, "proto=tcp flags=S noflags=A group=src sort=ports top=1")
    assert rows[0]["src"] == "10.11.0.66" and rows[0]["ports"] == 100
    per_app = {r["app"]: r for r in run_query(store, "group=app sort=bytes")}
    assert per_app["http"]["flows"] == 20 and per_app["dns"]["bytes"] > 0


@pytest.mark.parametrize(
    "bad", ["proto=ftp", "src=10.0.0.999", "dport=70000", "flags=X", "group=colour", "sort=colour", "nonsense", "x=1"]
)
def test_bad_terms_are_refused_with_a_reason(bad):
    with pytest.raises(InputError, match="cannot read query term|not an address"):
        compile_query(bad)


def test_values_are_parameters_not_sql(store):
    sql, params = compile_query('app="http\' OR 1=1 --"').sql()
    assert "OR 1=1" not in sql and params == ["http' or 1=1 --"]
    assert run_query(store, 'app="http\' OR 1=1 --"') == []
    with pytest.raises(InputError, match="No closing quotation"):
        compile_query("app=http' OR 1=1")


def test_retention_by_age(store):
    total = store.count()
    assert store.prune(max_age=3.0, now=1008.0) > 0
    assert 0 < store.count() < total
    assert store.prune(max_age=0.0, now=10_000.0) == store.count() or store.count() == 0


def test_alerts_are_stored_with_evidence(store):
    alerts = store.alerts()
    assert [a["kind"] for a in alerts] == ["port_scan"] and alerts[0]["evidence"]["ports"] == 100


def test_ipfix_round_trip_and_sizes():
    recs = [
        FlowRecord(FlowKey(6, "10.0.0.1", "10.0.0.2", 1000 + i, 80), i + 1, 100 * i, 1.5, 2.25, 0x12) for i in range(90)
    ]
    recs.append(FlowRecord(FlowKey(17, "fd00::1", "fd00::2", 5353, 53), 3, 300, 1.0, 2.0))
    msgs = ipfix_messages(recs, export_time=1)
    assert len(msgs) > 1 and all(len(m) <= MAX_MESSAGE for m in msgs)
    back = [row for m in msgs for row in parse_ipfix(m)]
    assert len(back) == 91
    assert back[5] == {
        "src": "10.0.0.1",
        "dst": "10.0.0.2",
        "sport": 1005,
        "dport": 80,
        "proto": 6,
        "tcp_flags": 0x12,
        "packets": 6,
        "bytes": 500,
        "first_ms": 1500,
        "last_ms": 2250,
    }
    assert back[-1]["src"] == "fd00::1"
    seqs = [int.from_bytes(m[8:12], "big") for m in msgs]
    assert seqs[0] == 0 and seqs[1] == len(parse_ipfix(msgs[0]))  # counts the records sent before


def test_csv_and_json_exports():
    rec = FlowRecord(FlowKey(17, "10.0.0.1", "10.0.0.2", 1, 53), 1, 60, 1.0, 1.0, app="dns")
    text = to_csv([rec.as_row()])
    assert text.splitlines()[0].startswith("proto,src,dst,sport,dport") and ",dns," in text


def test_cli_pcap_query_export(tmp_path, capsys):
    pcap, db = tmp_path / "t.pcap", tmp_path / "flows.db"
    T.write_pcap(pcap, T.merge(T.normal_traffic(1000.0), T.port_scan(1005.0)))
    assert main(["pcap", str(pcap), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "ALERT port_scan: 10.11.0.66" in out and "http" in out
    assert main(["query", "flags=S noflags=A group=src sort=ports top=1", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["src"] == "10.11.0.66"
    assert main(["export", "--db", str(db), "--where", "app=ssh", "--json"]) == 0
    assert {r["app"] for r in json.loads(capsys.readouterr().out)} == {"ssh"}
    assert main(["export", "--db", str(db), "--alerts", "--csv"]) == 0
    assert capsys.readouterr().out.startswith("kind,source,target")
    assert main(["query", "colour=blue", "--db", str(db)]) == 1
    assert main(["pcap", str(tmp_path / "missing.pcap")]) == 1
