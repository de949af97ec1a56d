"""``packetlab sketch run`` on a lab interface: the live top-k table, the adaptive switch under a spike of
new flows, Prometheus metrics scraped inside the namespace, detached at the end; usage errors exit 2."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from packetlab.ebpf.loader import attached_xdp_prog_id
from packetlab.show.prometheus import parse_samples
from packetlab.tools.sketch import cli
from packetlab.topo.traffic import flood


def test_run_prints_top_flows_switches_and_serves_metrics(lab, capsys):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.0.0.1/24", peer_ip="10.0.0.2/24")
    h1.ping("10.0.0.2", count=1, timeout=2)
    argv = ["run", "--netns", h2.namespace, "--dev", "eth0", "--interval", "0.4", "--duration", "4"]
    argv += ["--flows", "1024", "--high-rate", "3000", "--hold", "2", "--metrics-port", "9118", "--top", "3"]
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(cli.main(argv)))
    runner.start()
    deadline = time.monotonic() + 30
    while attached_xdp_prog_id(h2.namespace, "eth0") is None and time.monotonic() < deadline:
        time.sleep(0.1)  # compiling: wait for the attach before sending
    time.sleep(0.5)
    flood(h1, h2, src_ip="10.0.0.1", dst_ip="10.0.0.2", seconds=0.8, flows=5000, dst_port=9)
    time.sleep(1.0)  # an interval ends after the flood: its packets are in the totals
    scrape = h2.run(["curl", "-s", "http://127.0.0.1:9118/metrics"], check=True).stdout
    runner.join()
    out = capsys.readouterr().out
    assert codes == [0]
    assert "-> switched to sketch" in out and "udp 10.0.0.1:" in out and "flows/s" in out
    samples = parse_samples(scrape)
    assert any(name == "packetlab_sketch_switches_total" for name, _ in samples)
    assert samples[("packetlab_sketch_packets_total", frozenset({("counted", "packets")}))] > 1000
    assert attached_xdp_prog_id(h2.namespace, "eth0") is None, "the program is detached at the end"


def test_usage_errors_exit_2():
    run = [sys.executable, "-m", "packetlab", "sketch", "run", "--dev", "eth0"]
    out = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--netns" in out.stderr
    out = subprocess.run([*run, "--netns", "x", "--mode", "fast"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice" in out.stderr
