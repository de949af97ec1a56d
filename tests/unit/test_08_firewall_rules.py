"""Module 08: rule files, validation and the compiler — pure Python, no kernel.

The property tests (hypothesis) generate rule files, break them in one
place, and require a RuleError that names the file, the line and the field;
no other exception type may escape.
"""

from __future__ import annotations

import ipaddress
import random

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetlab.tools.firewall import EXAMPLES
from packetlab.tools.firewall.compiler import compile_rules, expand
from packetlab.tools.firewall.layout import MAX_RULE_BITS
from packetlab.tools.firewall.reference import PacketFields, rule_matches
from packetlab.tools.firewall.rulefile import load_rules, parse_port_range, parse_rate, parse_rules, parse_tcp_flags
from packetlab.tools.firewall.rules import RuleError, RuleSet, format_tcp_flags

BASIC = EXAMPLES / "basic.yaml"


def test_every_example_file_is_valid_except_the_broken_one():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        if path.name == "broken.yaml":
            with pytest.raises(RuleError) as err:
                compile_rules(load_rules(path))
            fields = {(p.line, p.field) for p in err.value.problems}
            assert fields == {(10, "action"), (11, "src"), (15, "dport"), (17, "action")}
            assert all(p.source == str(path) for p in err.value.problems)
        else:
            compiled = compile_rules(load_rules(path))
            assert compiled.n_entries >= len(compiled.ruleset.rules)


def test_basic_example_parses_to_the_expected_rules():
    rs = load_rules(BASIC)
    assert rs.default == "drop" and rs.fragments == "l3"
    assert [r.name for r in rs.rules] == ["ssh-admins", "web", "tcp-replies", "dns-replies", "ping"]
    ssh = rs.rule("ssh-admins")
    assert ssh.src == (ipaddress.ip_network("10.0.1.0/28"),) and ssh.proto == (6,) and ssh.dport == ((22, 22),)
    assert rs.rule("web").dport == ((80, 80), (443, 443), (8000, 8080))
    assert rs.rule("tcp-replies").tcp_flags == (0x10, 0x10)
    ping = rs.rule("ping")
    assert (ping.action, ping.rate, ping.burst) == ("rate-limit", 10.0, 5)
    assert ssh.line == 6 and ssh.lines["src"] == 8


BAD = [
    # (rule text inserted as the second rule, field, message fragment)
    ("{name: x, action: allow, src: 10.0.0.256/8}", "src", "Octet 256"),
    ("{name: x, action: allow, src: 10.1.2.3/16}", "src", "host bits set: did you mean 10.1.0.0/16"),
    ("{name: x, action: allow, dst: 'fd00::/129'}", "dst", "not a valid"),
    ("{name: x, action: allow, src: 10.0.0.0/8, dst: 'fd00::/8'}", "dst", "different IP versions"),
    ("{name: x, action: permit}", "action", "not one of allow, drop, rate-limit"),
    ("{name: x, src: 10.0.0.0/8}", "action", "missing"),
    ("{name: x, action: allow, proto: tcp, dport: 65536}", "dport", "outside 0..65535"),
    ("{name: x, action: allow, proto: tcp, dport: '90-80'}", "dport", "backwards"),
    ("{name: x, action: allow, proto: tcp, dport: [80, '79-81']}", "dport", "overlap"),
    ("{name: x, action: allow, dport: 80}", "dport", "ports only exist in TCP and UDP"),
    ("{name: x, action: allow, proto: icmp, sport: 80}", "sport", "ports only exist"),
    ("{name: x, action: allow, proto: tcpp}", "proto", "did you mean 'tcp'"),
    ("{name: x, action: allow, proto: 300}", "proto", "outside 0..255"),
    ("{name: x, action: allow, proto: udp, tcp_flags: syn}", "tcp_flags", "need proto: tcp"),
    ("{name: x, action: allow, proto: tcp, tcp_flags: 'syn,!sin'}", "tcp_flags", "unknown TCP flag 'sin'"),
    ("{name: x, action: rate-limit, proto: icmp}", "rate", "needs a rate"),
    ("{name: x, action: rate-limit, proto: icmp, rate: 'fast'}", "rate", "not a rate"),
    ("{name: x, action: rate-limit, proto: icmp, rate: 10/s, burst: 0}", "burst", "whole number"),
    ("{name: x, action: allow, rate: 10/s}", "rate", "only rate-limit rules"),
    ("{name: x, action: allow, dprot: 80}", "dprot", "did you mean 'dport'"),
    ("{name: first, action: allow}", "name", "already used"),
    ("{name: 'bad name!', action: allow}", "name", "not a usable name"),
    ("{name: x, action: allow, src: []}", "src", "empty list"),
    ("{name: x, action: allow, src: [any, 10.0.0.0/8]}", "src", "'any' cannot be combined"),
    ("{name: x, action: drop, proto: tcp, dport: 22}", "action", "contradiction: rule 'first'"),
]


@pytest.mark.parametrize("rule,field,fragment", BAD)
def test_bad_rule_names_file_line_and_field(rule, field, fragment):
    text = f"default: drop\nrules:\n  - {{name: first, action: allow, proto: tcp, dport: 22}}\n  - {rule}\n"
    with pytest.raises(RuleError) as err:
        compile_rules(parse_rules(text, source="rules.yaml"))
    problem = err.value.problems[0]
    assert problem.source == "rules.yaml"
    assert problem.line == 4, str(err.value)
    assert problem.field == field, str(err.value)
    assert fragment in problem.message, str(err.value)
    assert "rules.yaml:4" in str(err.value) and "nothing was applied" in str(err.value)


@pytest.mark.parametrize(
    "text,line,field",
    [
        ("rules: []\n", 1, "default"),
        ("default: maybe\nrules: []\n", 1, "default"),
        ("default: drop\n", 1, "rules"),
        ("default: drop\nrules: {a: 1}\n", 2, "rules"),
        ("default: drop\nfragments: reassemble\nrules: []\n", 2, "fragments"),
        ("default: drop\nrules:\n  - just a string\n", 3, None),
        ("default: drop\nrules: [\n", 3, None),  # YAML syntax error
        ("- a list\n", 1, None),
        ("default: drop\ndefault: allow\nrules: []\n", 2, "default"),
        ("default: drop\nrulez: []\n", 2, "rulez"),
    ],
)
def test_bad_file_structure(text, line, field):
    with pytest.raises(RuleError) as err:
        parse_rules(text, source="f.yaml")
    p = err.value.problems[0]
    assert (p.line, p.field) == (line, field), str(err.value)


def test_all_problems_reported_at_once():
    text = "default: drop\nrules:\n  - {action: alow}\n  - {action: allow, src: nope}\n  - {action: drop, proto: x}\n"
    with pytest.raises(RuleError) as err:
        parse_rules(text)
    assert [p.line for p in err.value.problems] == [3, 4, 5]


def test_redundant_rule_is_a_warning_not_an_error():
    rs = parse_rules(
        "default: drop\nrules:\n  - {name: a, action: allow, proto: tcp}\n"
        "  - {name: b, action: allow, proto: tcp, dport: 80}\n"
    )
    compile_rules(rs)
    assert any("'b' is redundant" in w for w in rs.warnings)


def test_partial_shadow_of_a_list_rule_is_a_contradiction():
    rs = parse_rules(
        "default: allow\nrules:\n  - {name: a, action: drop, src: 10.0.0.0/8}\n"
        "  - {name: b, action: allow, src: [10.1.0.0/16, 192.168.0.0/16]}\n"
    )
    with pytest.raises(RuleError) as err:
        compile_rules(rs)
    assert "for 10.1.0.0/16" in str(err.value) and err.value.line == 4


def test_non_overlapping_rules_are_not_flagged():
    rs = parse_rules(
        "default: drop\nrules:\n  - {name: a, action: drop, src: 10.0.0.0/8, proto: tcp}\n"
        "  - {name: b, action: allow, src: 10.1.0.0/16, proto: udp}\n"
        "  - {name: c, action: allow, proto: tcp, tcp_flags: syn}\n"
        "  - {name: d, action: drop, proto: tcp, tcp_flags: '!syn,ack'}\n"
    )
    compile_rules(rs)
    assert rs.warnings == [] or all("redundant" not in w for w in rs.warnings)


def test_ipv6_without_icmpv6_warns():
    rs = parse_rules("default: drop\nrules:\n  - {action: allow, src: 'fd00::/8', proto: tcp, dport: 80}\n")
    assert any("neighbour discovery" in w for w in rs.warnings)


def test_too_many_combinations_is_a_clear_error():
    srcs = [f"10.{i // 256}.{i % 256}.0/24" for i in range(200)]
    ports = list(range(1, 101))
    doc = {
        "default": "drop",
        "rules": [{"name": "huge", "action": "allow", "src": srcs, "proto": "tcp", "dport": ports}],
    }
    with pytest.raises(RuleError) as err:
        expand(parse_rules(yaml.safe_dump(doc)))
    assert f"{MAX_RULE_BITS:,}" in str(err.value) and err.value.problems[0].rule == "huge"


def test_field_parsers():
    assert parse_port_range("8000-8080") == (8000, 8080) and parse_port_range(0) == (0, 0)
    assert isinstance(parse_port_range(True), str) and isinstance(parse_port_range("80:90"), str)
    assert parse_tcp_flags("syn,!ack") == (0x12, 0x02) and format_tcp_flags((0x12, 0x02)) == "syn,!ack"
    assert parse_rate("300/m") == 5.0 and parse_rate(7) == 7.0 and isinstance(parse_rate("0/s"), str)


def test_to_yaml_round_trips_examples():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        if path.name == "broken.yaml":
            continue
        rs = load_rules(path)
        again = parse_rules(rs.to_yaml())
        assert [r.identity() for r in again.rules] == [r.identity() for r in rs.rules]
        assert (again.default, again.fragments) == (rs.default, rs.fragments)


# ---- the compiler agrees with the obvious linear scan ---------------------------------------------
def _random_ruleset(rnd: random.Random, n: int) -> RuleSet:
    nets4 = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "10.1.2.128/25", "0.0.0.0/0", "192.168.0.0/16"]
    nets6 = ["fd00::/8", "fd00:1::/32", "fd00:1::5/128", "::/0"]
    rules = []
    for i in range(n):
        fam = rnd.choice([nets4, nets6, None])
        r = {"name": f"r{i}", "action": rnd.choice(["allow", "drop"])}
        if fam and rnd.random() < 0.8:
            r["src"] = rnd.sample(fam, rnd.randint(1, 2))
        if fam and rnd.random() < 0.4:
            r["dst"] = rnd.choice(fam)
        proto = rnd.choice([None, "tcp", "udp", "icmp", ["tcp", "udp"]])
        if proto:
            r["proto"] = proto
        if proto in ("tcp", "udp", ["tcp", "udp"]) and rnd.random() < 0.7:
            lo = rnd.choice([0, 22, 80, 1024, 65535])
            r["dport"] = f"{lo}-{min(65535, lo + rnd.choice([0, 1, 100]))}"
        if proto == "tcp" and rnd.random() < 0.3:
            r["tcp_flags"] = rnd.choice(["syn,!ack", "ack", "rst"])
        rules.append(r)
    return parse_rules(yaml.safe_dump({"default": rnd.choice(["allow", "drop"]), "rules": rules}))


def test_compiled_tables_classify_like_a_linear_scan():
    rnd = random.Random(8)
    checked = 0
    for _ in range(60):
        try:
            rs = _random_ruleset(rnd, rnd.randint(1, 15))
            compiled = compile_rules(rs)
        except RuleError:
            continue
        for _ in range(60):
            v6 = rnd.random() < 0.4
            src = rnd.choice(
                ["fd00:1::5", "fd00:2::1", "fe80::1"] if v6 else ["10.1.2.3", "10.1.2.200", "10.9.0.1", "8.8.8.8"]
            )
            dst = rnd.choice(["fd00:1::6", "::1"] if v6 else ["10.1.2.4", "192.168.1.1"])
            proto = rnd.choice([6, 17, 1, 47])
            dport = rnd.choice([0, 21, 22, 23, 80, 81, 180, 181, 1024, 65535]) if proto in (6, 17) else None
            flags = rnd.choice([0x02, 0x12, 0x10, 0x04]) if proto == 6 else None
            got = compiled.lookup(
                src=src, dst=dst, proto=proto, dport=dport, sport=1234 if dport is not None else None, tcp_flags=flags
            )
            f = PacketFields(
                "ip",
                version=6 if v6 else 4,
                src=ipaddress.ip_address(src),
                dst=ipaddress.ip_address(dst),
                proto=proto,
                dport=dport,
                sport=1234 if dport is not None else None,
                flags=flags,
            )
            want = next((r for r in rs.rules if rule_matches(r, f)), None)
            assert got == want, (rs.to_yaml(), src, dst, proto, dport, flags)
            checked += 1
    assert checked > 1000


# ---- property tests: any broken file gives a located RuleError ----------------------------------
names = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
valid_rule = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["allow", "drop"]),
    },
    optional={
        "src": st.sampled_from(["10.0.0.0/8", "192.168.1.0/24", "fd00::/8", "any"]),
        "proto": st.sampled_from(["tcp", "udp"]),
        "dport": st.integers(0, 65535),
    },
)
MUTATIONS = {
    "src": ["10.0.0.300/8", "10.0.0.1/8", "banana", 42, "fd00::/200", ["10.0.0.0/8", "10.0.0.0/8"]],
    "dport": [70000, -1, "9-1", "http", 3.5, []],
    "action": ["accept", "", None, 7, ["allow"]],
    "proto": ["tcpx", 256, -3, {"a": 1}],
    "rate": ["10/fortnight", 0, -5, "x"],
    "tcp_flags": ["syn,bogus", "", 3],
    "extra": [1, "x"],
}


@st.composite
def broken_documents(draw):
    rules = draw(st.lists(valid_rule, min_size=1, max_size=6))
    rules = [dict(r, name=f"r{i}") for i, r in enumerate(rules)]
    for r in rules:  # keep the *valid* part valid
        if "dport" in r and "proto" not in r:
            r["proto"] = "tcp"
        if r.get("src") == "any":
            del r["src"]
    victim = draw(st.integers(0, len(rules) - 1))
    field = draw(st.sampled_from(sorted(MUTATIONS)))
    value = draw(st.sampled_from(MUTATIONS[field]))
    if field == "dport":
        rules[victim]["proto"] = "tcp"
    if field == "rate":
        rules[victim]["action"] = "rate-limit"
    if field == "tcp_flags":
        rules[victim]["proto"] = "tcp"
        rules[victim].pop("dport", None)
    rules[victim][field] = value
    return {"default": draw(st.sampled_from(["allow", "drop"])), "rules": rules}, victim, field


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_documents())
def test_broken_rule_files_always_give_a_located_error(case):
    doc, victim, field = case
    text = yaml.safe_dump(doc, sort_keys=False)
    with pytest.raises(RuleError) as err:
        compile_rules(parse_rules(text, source="prop.yaml"))
    problems = err.value.problems
    assert problems and all(p.source == "prop.yaml" for p in problems)
    assert all(p.line is not None and 1 <= p.line <= text.count("\n") + 1 for p in problems)
    # the mutated field of the mutated rule is among the problems named
    assert any(p.field == field and p.rule in (f"r{victim}", f"#{victim + 1}") for p in problems), str(err.value)


@settings(max_examples=80, deadline=None)
@given(st.lists(valid_rule, min_size=0, max_size=8), st.sampled_from(["allow", "drop"]))
def test_valid_documents_parse_and_round_trip(rules, default):
    rules = [dict(r, name=f"r{i}") for i, r in enumerate(rules)]
    for r in rules:
        if "dport" in r and "proto" not in r:
            r["proto"] = "tcp"
    text = yaml.safe_dump({"default": default, "rules": rules})
    rs = parse_rules(text)
    assert len(rs.rules) == len(rules)
    assert [r.identity() for r in parse_rules(rs.to_yaml()).rules] == [r.identity() for r in rs.rules]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_loader(text):
    try:
        parse_rules(text)
    except RuleError as err:
        assert err.problems


junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 70000)
    | st.floats(allow_nan=False)
    | st.sampled_from(["tcp", "any", "10.0.0.0/8", "fd00::/8", "80-90", "allow", "rate-limit", "syn", "5/s", ""]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["name", "action", "src", "dst", "proto", "dport", "sport", "tcp_flags", "rate", "burst", "other"]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(junk, st.sampled_from(["allow", "drop"])), st.lists(junk, max_size=5))
def test_arbitrary_structures_give_a_rule_error_or_a_valid_set(default, rules):
    text = yaml.safe_dump({"default": default, "rules": rules})
    try:
        compile_rules(parse_rules(text, source="junk.yaml"))
    except RuleError as err:
        assert err.problems and all(p.source == "junk.yaml" for p in err.problems)
        assert all(p.line is not None for p in err.problems), str(err)
