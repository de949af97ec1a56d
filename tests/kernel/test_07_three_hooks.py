"""Module 07: one UDP flow through XDP, tc clsact ingress and a socket filter — who sees what, who drops what."""

from __future__ import annotations

from packetlab.course.m07_xdp.three_hooks import compare_hooks, hooks_table


def test_each_hook_sees_what_the_earlier_ones_passed(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.7.1.1/24", peer_ip="10.7.1.2/24")
    assert h1.ping("10.7.1.2", timeout=3).ok
    runs = {r.drop_at: r for r in compare_hooks(h1, h2, "10.7.1.2", count=10, pings=1)}
    seen = {k: (r.xdp, r.tc, r.socket, r.received) for k, r in runs.items()}
    assert seen == {
        None: (10, 10, 10, 10),  # nobody drops: every hook and the application see all of it
        "xdp": (10, 0, 0, 0),  # XDP runs first: tc and the socket never see what it dropped
        "tc": (10, 10, 0, 0),  # tc runs before routing and the socket
        "socket": (10, 10, 10, 0),  # the socket filter drops for its socket only, after both
    }, hooks_table(list(runs.values()))
    # other traffic (the ping, its ARP) reaches XDP and tc alike; the socket filter only sees its socket's
    assert all(r.xdp_other >= 1 and r.xdp_other == r.tc_other for r in runs.values())
    # everything was taken off again
    assert "xdp" not in h2.run(["ip", "link", "show", "dev", "eth0"]).stdout
    assert "clsact" not in h2.run(["tc", "qdisc", "show", "dev", "eth0"]).stdout
