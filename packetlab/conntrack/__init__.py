"""Connection tracking two ways: the kernel's table, and a small tracker of our own.

Module 03 drives TCP, UDP and ICMP through a lab router and reads what the
kernel's conntrack made of every packet. This package gives it:

* `model` — tuples, segments, the TCP state table and the default timeouts
  (pure definitions, shared by everything below);
* `kernel` — the kernel's side, inside a lab namespace: `kernel_table()` parses
  ``conntrack -L`` into `CtEntry` rows, `kernel_stats()`, `kernel_timeouts()`,
  and `CtStateCounters`, which counts forwarded packets per ``ct state`` (NEW,
  ESTABLISHED, RELATED, INVALID) — how we learn what the kernel decided about
  *one* packet;
* `craft` — `TcpConversation` builds both ends of a TCP conversation with
  consistent sequence numbers, `LabWire` sends them from the right lab host,
  `silence_kernel()` keeps the end hosts' stacks quiet;
* `tracker` — `Tracker`, a userspace connection tracker following the same
  state machine as ``nf_conntrack_proto_{tcp,udp,icmp}.c``;
* `walk` — `compare()` puts the two tables side by side, `Walkthrough` sends
  crafted packets one at a time and records both views.
"""
from __future__ import annotations

from .craft import (PROBE_FLAGS, STATE_RECIPES, LabWire, TcpConversation, probe, reach_state,
                    silence_kernel)
from .kernel import (CT_STATES, CtStateCounters, flush, format_entries, format_tally, kernel_count, kernel_entry,
                     kernel_stats, kernel_table, kernel_timeouts, parse_conntrack)
from .model import (ACK, CWR, DEFAULT_TIMEOUTS, ECE, FIN, FLAG_CLASSES, ICMP_ERRORS, ICMP_REPLY_TYPE, ICMP_REQUESTS,
                    ORIGINAL, PROTO_ICMP, PROTO_NAMES, PROTO_TCP, PROTO_UDP, PSH, REPLY, RST, SYN, TCP_STATES,
                    TCP_TABLE, URG, CtEntry, FlowTuple, Segment, after, before, flag_class, segment_from_packet,
                    short_tuple, valid_flag_combination)
from .tracker import Conn, Decision, Tracker
from .walk import Comparison, Step, Walkthrough, compare, format_comparison

__all__ = [
    "ACK", "CWR", "CT_STATES", "DEFAULT_TIMEOUTS", "ECE", "FIN", "FLAG_CLASSES", "ICMP_ERRORS", "ICMP_REPLY_TYPE",
    "ICMP_REQUESTS", "ORIGINAL", "PROBE_FLAGS", "PROTO_ICMP", "PROTO_NAMES", "PROTO_TCP", "PROTO_UDP", "PSH", "REPLY",
    "RST", "STATE_RECIPES", "SYN", "TCP_STATES", "TCP_TABLE", "URG",
    "Comparison", "Conn", "CtEntry", "CtStateCounters", "Decision", "FlowTuple", "LabWire", "Segment", "Step",
    "TcpConversation", "Tracker", "Walkthrough",
    "after", "before", "compare", "flag_class", "flush", "format_comparison", "format_entries", "format_tally",
    "kernel_count", "kernel_entry", "kernel_stats", "kernel_table", "kernel_timeouts", "parse_conntrack", "probe",
    "reach_state", "segment_from_packet", "short_tuple", "silence_kernel", "valid_flag_combination",
]
