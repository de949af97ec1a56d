"""C assignments without a kernel: every solution IS the region of the course program it replaces
(so the two never drift apart), every starter still has its TODO markers, the splice puts the
learner's lines where the line mapping says, and every lab links each starter and runs its check."""

from __future__ import annotations

import importlib
import json

import pytest

from packetlab.course.assignments import Assignment, Build, edited, region_text, splice
from packetlab.ebpf.loader import resolve_source
from packetlab.paths import REPO_ROOT

MODULES = {
    "01": "packetlab.course.m01_osi_model.assignments",
    "06": "packetlab.course.m06_ebpf_fundamentals.assignments",
    "07": "packetlab.course.m07_xdp.assignments",
    "08": "packetlab.course.m08_milestone_xdp_firewall.assignments",
    "09": "packetlab.course.m09_milestone_l4_load_balancer.assignments",
    "10": "packetlab.course.m10_kubernetes_networking.assignments",
    "11a": "packetlab.course.m11a_telemetry_sketch.assignments",
    "11b": "packetlab.course.m11b_packet_analyzer.assignments",
    "11c": "packetlab.course.m11c_dhcp_fastpath.assignments",
}


def all_assignments() -> list[tuple[str, Assignment]]:
    return [(nn, a) for nn, mod in MODULES.items() for a in importlib.import_module(mod).ASSIGNMENTS]


ALL = all_assignments()
IDS = [a.key for _, a in ALL]


@pytest.mark.parametrize(("nn", "a"), ALL, ids=IDS)
def test_solution_is_the_programs_own_region(nn, a):
    assert a.starter.startswith(f"bpf/{nn}-assign-") and a.solution.startswith("bpf/solutions/")
    solution = resolve_source(a.solution).read_text()
    assert "TODO" not in solution
    if a.skeleton is not None:
        assert region_text(a.skeleton, a.region) == solution, f"{a.solution} differs from {a.skeleton}:{a.region}"
        text, _ = splice(a.skeleton, a.region, a.solution)
        assert text == resolve_source(a.skeleton).read_text()


@pytest.mark.parametrize(("nn", "a"), ALL, ids=IDS)
def test_starter_has_todos_and_maps_its_lines(nn, a):
    assert edited(a.starter) is None and edited(a.solution) == a.solution
    if a.skeleton is None:
        return
    text, offset = splice(a.skeleton, a.region, a.starter)
    starter = resolve_source(a.starter).read_text().splitlines()
    b = Build(REPO_ROOT / "x.c", resolve_source(a.starter), offset, len(starter))
    first_todo = next(n for n, line in enumerate(starter, 1) if "TODO" in line)
    built_line = next(n for n, line in enumerate(text.splitlines(), 1) if "TODO" in line)
    assert b.learner_line(built_line) == first_todo and b.learner_line(offset) is None


@pytest.mark.parametrize(("nn", "a"), ALL, ids=IDS)
def test_lab_links_the_starter_and_runs_the_check(nn, a):
    lab = next((REPO_ROOT / "labs").glob(f"{nn}-*.ipynb"))
    cells = ["".join(c["source"]) for c in json.loads(lab.read_text())["cells"]]
    assert any(f"]({a.starter})" in c for c in cells), f"{lab.name} has no link to {a.starter}"
    assert any(a.solution in c and "use_reference(edited(source)" in c for c in cells)
    assert (REPO_ROOT / "labs" / a.starter).is_file()  # labs/bpf links to bpf/: JupyterLab serves labs/ only


def test_a_missing_region_names_the_markers_to_add(tmp_path):
    from packetlab.course.assignments import region
    from packetlab.errors import PacketlabError

    with pytest.raises(PacketlabError, match="no single snippet region 'core'") as err:
        region("int x;\n/* --8<-- [start:core] */\n", "core", "x.c")
    assert "[end:core]" in str(err.value.fix)


def test_a_wrong_frame_is_shown_in_one_line_with_the_first_difference():
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from packetlab.course.assignments import describe_packet, first_difference

    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    want = bytes(e / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(dport=53))
    got = bytes(e / IP(src="10.0.0.1", dst="10.0.0.3") / UDP(dport=53))
    assert "10.0.0.2" in describe_packet(want) and "(42 bytes)" in describe_packet(want)
    assert "first difference at byte 25" in first_difference(want, got)  # the IPv4 checksum's low byte comes first
    assert describe_packet(b"\x00" * 14).endswith("(14 bytes)")
