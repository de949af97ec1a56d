"""The module 11a telemetry tool: per-flow counting in XDP, exact or by Count-Min Sketch.

* `layout` — the C structs' Python twins, the geometry (d, w, candidates) and the control word;
* `model` — the same sketch in Python (same hash), with its error bounds;
* `telemetry` — the loaded program: switch mode, swap slots, read consistent snapshots;
* `controller` — the adaptive exact/sketch switch with hysteresis;
* `traffic` — reproducible workloads (Zipf flows, a spike of small flows, a pcap) as frames;
* `cli` — ``packetlab sketch run``.

A tool: it never imports the course.
"""
