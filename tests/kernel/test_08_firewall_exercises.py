"""Module 08 on the real kernel: exercise checks (right answers pass, wrong ones explain), the
notebook rule editor, and a seconds-long smoke run of the benchmark (shape only, never speed)."""

from __future__ import annotations

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m08_milestone_xdp_firewall.exercises import check_culprit, check_ipv6, check_policy
from packetlab.course.m08_milestone_xdp_firewall.topology import build, tcp_connect
from packetlab.tools.firewall import EXAMPLES
from packetlab.tools.firewall.editor import RuleEditor
from packetlab.tools.firewall.program import Firewall
from packetlab.topo import netns
from tests.unit.test_08_firewall_exercises import POLICY_ANSWER  # shared with its unit twin

IPV6_ANSWER = """\
default: drop
rules:
  - {name: ssh-admins, action: allow, src: [10.0.1.0/28, "fd00:1::/124"], proto: tcp, dport: 22}
  - {name: web, action: allow, proto: tcp, dport: [80, 443]}
  - {name: ping, action: rate-limit, proto: icmp, rate: 5/s, burst: 5}
  - {name: icmpv6, action: allow, proto: icmpv6}
"""

MYSTERY_RULES = """\
default: drop
rules:
  - {name: ssh-admins, action: allow, src: 10.0.1.0/28, proto: tcp, dport: 22}
  - {name: scanners, action: drop, src: 10.0.1.192/26}
  - {name: web, action: allow, proto: tcp, dport: [80, 443, 8080]}
  - {name: legacy-alt-http, action: drop, proto: tcp, dport: 8000-8999}
  - {name: icmpv6, action: allow, proto: icmpv6}
"""


def test_policy_reference_passes(capsys):
    assert check_policy(POLICY_ANSWER)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer,why",
    [
        (None, "no answer yet"),
        (POLICY_ANSWER.replace("src: 10.0.1.0/28, ", ""), "SSH from guest 10.0.1.200: expected XDP_DROP"),
        (POLICY_ANSWER.replace("10.0.1.0/28", "10.0.1.0/24"), "SSH from 10.0.1.16"),
        (POLICY_ANSWER.replace("[80, 443]", "80"), "HTTPS from an outside address"),
        (POLICY_ANSWER.replace("default: drop", "default: allow"), "TCP 8080 from guest"),
        (POLICY_ANSWER.replace("rate-limit", "allow").replace(", rate: 5/s, burst: 5", ""), "not a rate-limit rule"),
        (POLICY_ANSWER.replace("5/s", "50/s"), "allows 50 packets/s"),
        (POLICY_ANSWER.replace("burst: 5", "burst: 1000"), "of 30 back-to-back pings passed"),
        (POLICY_ANSWER.replace("dport: 22", "dport: 99999"), "does not validate"),
    ],
)
def test_policy_wrong_answers_explain(answer, why):
    with pytest.raises(CheckFailed) as err:
        check_policy(answer)
    assert why in str(err.value)


@pytest.fixture(scope="module")
def flab(module_lab):
    return build(module_lab)


def test_culprit_check_against_kernel_counters(flab):
    fw = Firewall.attach(flab.srv, "eth0", MYSTERY_RULES)
    try:

        def mystery():
            return tcp_connect(flab.guest, flab.ip("srv"), 8080, timeout=1)

        assert not mystery()
        assert check_culprit(fw, mystery, "scanners")
        for wrong, why in (
            ("legacy-alt-http", "did not count"),
            ("default", "did not count"),
            ("nope", "no rule named"),
            (None, "no answer yet"),
        ):
            with pytest.raises(CheckFailed) as err:
                check_culprit(fw, mystery, wrong)
            assert why in str(err.value)
    finally:
        fw.detach()


@pytest.mark.slow
def test_ipv6_check_with_real_connections(flab):
    fw = Firewall.attach(flab.srv, "eth0", POLICY_ANSWER)
    try:
        with pytest.raises(CheckFailed) as err:
            check_ipv6(flab, fw, POLICY_ANSWER)  # IPv4-only: ND is dropped, nothing works over v6
        assert "neighbour discovery" in str(err.value) and "guest -> [fd00:1::2]:80" in str(err.value)
        with pytest.raises(CheckFailed) as err:
            check_ipv6(flab, fw, IPV6_ANSWER.replace('[10.0.1.0/28, "fd00:1::/124"]', '[10.0.1.0/28, "fd00:1::/64"]'))
        assert "guest -> [fd00:1::2]:22: connected" in str(err.value)
        assert check_ipv6(flab, fw, IPV6_ANSWER)
    finally:
        fw.detach()


def test_rule_editor_apply(flab):
    fw = Firewall.load(EXAMPLES / "basic.yaml")
    try:
        ed = RuleEditor(fw.ruleset(), firewall=fw)
        ed.add_rule(name="extra", action="drop", proto="udp", dport=9)
        msg = ed.apply()
        assert "generation 2" in msg and fw.ruleset().rules[-1].name == "extra"
    finally:
        fw.close()


def test_benchmark_smoke_run_has_every_row():
    from packetlab.bench.firewall import VARIANTS, run

    report = run(sizes=(1, 20), seconds=0.3, repeat=1000, lab_name="t08d")
    assert not netns.exists("t08d-h1")
    assert [(r.variant, r.rules) for r in report.rows] == [("xdp-drop-floor", 0)] + [
        (v, n) for v in VARIANTS for n in (1, 20)
    ]
    assert all(r.live_pps and r.live_pps > 0 for r in report.rows)
    assert all(r.testrun_ns for r in report.rows if r.variant.startswith("xdp"))
    text = report.text()
    assert "target: XDP firewall ns/packet at 20 rules within 1.5x of 1 rule" in text
    assert "iptables/XDP (live)" in text
