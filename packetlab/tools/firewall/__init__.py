"""Module 08 milestone: an XDP firewall you configure with a YAML rule file.

    from packetlab.tools.firewall import Firewall, load_rules
    fw = Firewall.attach(h2, "eth0", "packetlab/tools/firewall/examples/basic.yaml")
    fw.apply(load_rules("other.yaml"))       # atomic swap under traffic
    print(fw.status().table())               # rules with packet/byte counters
    print(fw.metrics())                      # the same, in Prometheus text format

Pieces, bottom up: `rules` (the rule model and `RuleError`), `layout` (the
program's map layout), `compiler` (rules -> lookup tables), `rulefile` (YAML rule
files, validated), `status` (the counters record), `stats` (Prometheus),
`program` (the kernel side on `packetlab.ebpf.maps`: atomic apply, counters), `pinned` (the
CLI's install/remove with bpffs pins), `reference` (the rules evaluated in
Python), `editor` (notebook widgets), `cli` (`packetlab firewall ...`).
"""

from packetlab.tools.firewall.compiler import Compiled, compile_rules
from packetlab.tools.firewall.layout import Capacity
from packetlab.tools.firewall.program import ApplyResult, CapacityError, Firewall
from packetlab.tools.firewall.rulefile import load_rules, parse_rules, ruleset_from_dicts
from packetlab.tools.firewall.rules import Problem, Rule, RuleError, RuleSet
from packetlab.tools.firewall.status import FirewallStatus, RuleStatus

EXAMPLES = __import__("pathlib").Path(__file__).with_name("examples")

__all__ = [
    "ApplyResult",
    "Capacity",
    "CapacityError",
    "Compiled",
    "EXAMPLES",
    "Firewall",
    "FirewallStatus",
    "Problem",
    "Rule",
    "RuleError",
    "RuleSet",
    "RuleStatus",
    "compile_rules",
    "load_rules",
    "parse_rules",
    "ruleset_from_dicts",
]
