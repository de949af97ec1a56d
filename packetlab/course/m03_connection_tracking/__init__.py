"""Module 03 · connection tracking: the kernel's table beside our own tracker.

Connection tracking two ways: the kernel's table, and a small tracker of our own.

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
