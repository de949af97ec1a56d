"""Module 04, no kernel: trace parsing, grouping and drawing, the rule generators' shapes, and
the rule-scaling benchmark's argument checks."""

from __future__ import annotations

import pytest

from packetlab.bench import rules as rules_bench
from packetlab.topo.netfilter import (
    BaseChain,
    Hop,
    annotate_hooks,
    filler_addresses,
    iptables_linear_ruleset,
    mermaid_path,
    nft_linear_ruleset,
    nft_set_ruleset,
    parse_trace,
    text_path,
    trace_paths,
)

TRACE = """\
trace id 3eb8b81a inet f pre packet: iif "eth0" ip saddr 10.0.1.1 ip daddr 10.0.2.1 icmp type echo-request
trace id 3eb8b81a inet f pre rule icmp type echo-request meta nftrace set 1 (verdict continue)
trace id 3eb8b81a inet f pre rule tcp dport 22 jump ssh (verdict jump ssh)
trace id 3eb8b81a inet f ssh rule ip saddr 10.0.1.1 accept (verdict accept)
trace id 3eb8b81a inet f fw packet: iif "eth0" oif "eth1" ip saddr 10.0.1.1 ip daddr 10.0.2.1
trace id 3eb8b81a inet f fw rule ct state new counter packets 0 bytes 0 (verdict continue)
trace id 3eb8b81a inet f fw policy accept
trace id 77777777 ip filter INPUT packet: iif "eth0" ip saddr 10.0.1.1
trace id 77777777 ip filter INPUT rule ip saddr 10.0.1.1 counter packets 0 bytes 0 drop (verdict drop)
some unrelated line
"""


def test_parse_trace_and_group_into_paths():
    events = parse_trace(TRACE)
    assert len(events) == 9
    assert [e.kind for e in events[:4]] == ["packet", "rule", "rule", "rule"]
    assert events[2].verdict == "jump" and events[6].verdict == "accept" and events[6].kind == "policy"
    paths = trace_paths(events)
    first = paths["3eb8b81a"]
    assert [h.chain for h in first] == ["pre", "ssh", "fw"]
    assert [h.verdict for h in first] == ["jump", "accept", "accept"]
    assert paths["77777777"][0].verdict == "drop"


def test_hops_are_annotated_and_drawn():
    paths = trace_paths(parse_trace(TRACE))
    chains = [
        BaseChain("inet", "f", "pre", "filter", "prerouting", -300, "accept"),
        BaseChain("inet", "f", "fw", "filter", "forward", 0, "accept"),
    ]
    annotate_hooks(paths, chains)
    hops = paths["3eb8b81a"]
    assert (hops[0].hook, hops[0].priority) == ("prerouting", -300) and hops[1].hook is None
    diagram = mermaid_path(hops, 'a "quoted" title')
    assert diagram.startswith("flowchart LR") and "prerouting · prio -300" in diagram and '"' not in "quoted"
    assert diagram.count("-->") == len(hops) + 1
    dropped = mermaid_path(paths["77777777"])
    assert "DROP" in dropped
    assert "forward" in text_path(hops) and "-> accept" in text_path(hops)
    assert mermaid_path([Hop("inet", "f", "c", "accept", hook="input", priority=0)]).count("local socket") == 1


def test_filler_addresses_and_ruleset_shapes():
    addrs = filler_addresses(1000)
    assert len(set(addrs)) == 1000 and addrs[0] == "198.18.0.1" and all(a.startswith("198.1") for a in addrs)
    lin = nft_linear_ruleset(100, "10.77.1.1")
    assert lin.count(" drop") == 101 and 'ip saddr 10.77.1.1 counter drop comment "match"' in lin
    st = nft_set_ruleset(100, "10.77.1.1")
    assert st.count("ip saddr") == 1 and st.count(",") == 100
    ipt = iptables_linear_ruleset(100, "10.77.1.1")
    assert ipt.startswith("*raw") and ipt.count("-A PREROUTING") == 101 and ipt.rstrip().endswith("COMMIT")
    with pytest.raises(Exception, match="198.18.0.0/15"):
        filler_addresses(200_000)


def test_benchmark_cli_rejects_bad_arguments(capsys):
    assert rules_bench.main(["--variants", "nft-chain,bogus", "--seconds", "0.1"]) == 1
    assert "unknown rule variant" in capsys.readouterr().err
    assert rules_bench.main(["--sizes", "ten"]) == 2
