"""Module 08, no kernel: the notebook rule editor writes the rule file format (the policy answer
here is shared with tests/kernel/test_08_firewall_exercises.py)."""

from __future__ import annotations

import pytest

from packetlab.tools.firewall.editor import RuleEditor
from packetlab.tools.firewall.rulefile import parse_rules
from packetlab.tools.firewall.rules import RuleError

POLICY_ANSWER = """\
default: drop
rules:
  - {name: ssh-admins, action: allow, src: 10.0.1.0/28, proto: tcp, dport: 22}
  - {name: web, action: allow, proto: tcp, dport: [80, 443]}
  - {name: ping, action: rate-limit, proto: icmp, rate: 5/s, burst: 5}
"""


def test_rule_editor_writes_the_rule_file_format(tmp_path):
    ed = RuleEditor(parse_rules(POLICY_ANSWER))
    assert [r["name"].value for r in ed.rows] == ["ssh-admins", "web", "ping"]
    ed.add_rule(name="dns", action="allow", proto="udp", dport=53)
    ed.add_rule(name="v6", action="allow", src=["fd00:1::/64", "fd00:2::/64"], proto="tcp", dport="8000-8080")
    rs = ed.ruleset()
    assert [r.name for r in rs.rules] == ["ssh-admins", "web", "ping", "dns", "v6"]
    assert rs.rule("web").dport == ((80, 80), (443, 443)) and rs.rule("ping").rate == 5
    assert len(rs.rule("v6").src) == 2
    assert parse_rules(ed.to_yaml()).rules == rs.rules  # the same format as files
    path = tmp_path / "edited.yaml"
    assert ed.save(path) == f"saved {path}" and parse_rules(path.read_text()).rules == rs.rules
    ed.remove_rule(3)
    assert [r["name"].value for r in ed.rows] == ["ssh-admins", "web", "ping", "v6"]
    ed.rows[0]["src"].value = "10.0.1.0/33"
    with pytest.raises(RuleError) as err:
        ed.ruleset()
    assert err.value.field == "src"
    ed._report(ed.validate)  # what the Validate button shows
    assert "<rule editor>:" in ed.message and "field 'src'" in ed.message and "10.0.1.0/33" in ed.message
    with pytest.raises(TypeError):
        ed.add_rule(name="x", dports=1)
