"""The Verifier Diary on the real kernel: every broken program is rejected for its expected
reason, every fix loads (and runs), and the toolkit recovers the verifier's log and points at
the right line."""

from __future__ import annotations

import os
import re

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from packetlab.course.m06_ebpf_fundamentals import verifier_diary as diary
from packetlab.ebpf import features as kernel_probes
from packetlab.ebpf.co_re import PIN_ROOT
from packetlab.ebpf.loader import LoadedProgram, explain_verifier_log, resolve_source
from packetlab.errors import VerifierError
from tests.unit.test_06_verifier_diary import IDS  # shared with its unit twin


@pytest.mark.parametrize("entry", diary.ENTRIES, ids=IDS)
def test_broken_program_is_rejected_with_the_expected_reason(entry):
    result = diary.attempt(entry, "broken")
    assert not result.loaded, f"{entry.broken} loaded, but the verifier should reject it"
    assert isinstance(result.error, VerifierError)
    assert result.rejected_as_expected, f"unexpected reason:\n{result.error.log[-1500:]}"
    assert re.search(entry.expect, result.message)  # the headline is the verifier's own line
    assert result.error.log.strip()  # captured live, not empty
    # the toolkit maps the log to the marked line; only the stack-size check (done after the walk) names none
    assert result.line_from_verifier or entry.key == "stack-too-large"
    assert result.line_number == entry.marked_line, (result.line_number, result.source_line)
    assert diary.MARKER in result.source_line


@pytest.mark.parametrize("entry", diary.ENTRIES, ids=IDS)
def test_fixed_program_loads(entry):
    result = diary.attempt(entry, "fixed")
    assert result.loaded, str(result.error)
    assert not (PIN_ROOT / f"pid{os.getpid()}").exists()  # CO-RE pins removed again


def test_uninit_stack_is_accepted_for_a_perfmon_capable_loader():
    """Why the diary drops CAP_PERFMON: as root, the supported kernels allow uninitialised stack reads."""
    if not kernel_probes.has("perfmon_uninit_stack"):
        pytest.skip(kernel_probes.missing_message("perfmon_uninit_stack"))
    LoadedProgram("bpf/06-fail-uninit-stack.c").close()


def test_child_loader_reports_json(capsys):
    assert diary.main(["--child", "bpf/06-fail-misaligned.c"]) == 0
    out = capsys.readouterr().out
    assert '"loaded": false' in out and "misaligned" in out


def test_summary_and_describe_render():
    pairs = [(diary.attempt("misaligned", "broken"), diary.attempt("misaligned", "fixed"))]
    table = diary.summary(pairs)
    assert "misaligned" in table and "rejected" in table and "loads" in table
    page = diary.describe(*pairs[0])
    assert "misaligned value access" in page and "line 25" in page and "-> loads" in page


# ---- the fixes do what they say ---------------------------------------------------------------
def _frame(proto: str = "udp", size: int = 0) -> bytes:
    l4 = {"udp": UDP(dport=53), "tcp": TCP(dport=80)}[proto]
    return bytes(Ether() / IP(src="10.0.6.1", dst="10.0.6.2") / l4 / (b"x" * size))


def test_fixed_packet_bounds_counts_protocols_and_survives_short_frames():
    prog = LoadedProgram("bpf/06-fixed-packet-bounds.c")
    try:
        assert prog.test_run(_frame("udp")).verdict == "XDP_PASS"
        assert prog.test_run(_frame("tcp")).verdict == "XDP_PASS"
        short = bytes(Ether(type=0x0800)) + b"\x45"  # IPv4 EtherType, header cut after 1 byte
        assert prog.test_run(short).verdict == "XDP_PASS"
        counts = {k: v for k, v in prog.table("protocols").items() if v}
        assert counts == {17: 1, 6: 1}
    finally:
        prog.close()


def test_fixed_loop_clamps_the_configured_rounds():
    prog = LoadedProgram("bpf/06-fixed-unbounded-loop.c")
    try:
        table = prog["rounds"]
        results = {}
        for rounds in (3, 64, 1_000_000):
            table[table.Key(0)] = table.Leaf(rounds)
            prog.test_run(_frame())
            results[rounds] = prog.table("last_hash")[0]
        assert results[3] != results[64]
        assert results[64] == results[1_000_000]  # clamped to MAX_ROUNDS
    finally:
        prog.close()


def test_fixed_null_check_inserts_then_counts():
    prog = LoadedProgram("bpf/06-fixed-null-map-value.c")
    try:
        for _ in range(3):
            prog.test_run(_frame())
        assert sum(prog.table("frames_by_ifindex").values()) == 3
    finally:
        prog.close()


def test_fixed_histogram_puts_frames_in_buckets():
    prog = LoadedProgram("bpf/06-fixed-map-out-of-range.c")
    try:
        prog.test_run(_frame(size=0))  # 42 bytes -> bucket 0
        prog.test_run(_frame(size=300))  # 342 bytes -> bucket 2
        buckets = prog.table("frame_sizes")[0]["bucket"]
        assert buckets[0] == 1 and buckets[2] == 1 and sum(buckets) == 2
    finally:
        prog.close()


def test_fixed_helper_reads_the_first_word_of_the_frame():
    prog = LoadedProgram("bpf/06-fixed-bad-helper.c")
    try:
        frame = _frame()
        prog.test_run(frame)
        assert prog.table("first_word")[0] == int.from_bytes(frame[:4], "little")
    finally:
        prog.close()


def test_fixed_alignment_counts_atomically():
    prog = LoadedProgram("bpf/06-fixed-misaligned.c")
    try:
        prog.test_run(_frame(), repeat=5)
        assert prog.table("stats")[0]["packets"] == 5
    finally:
        prog.close()


# ---- the verifier's log when bcc gives none (packetlab/ebpf/verifier_log.py) ----------------------------
@pytest.fixture
def compiled():
    """bcc-compiled (not loaded) diary programs; their maps stay open until the test ends."""
    import bcc

    made = []

    def compile_(name: str):
        made.append(bcc.BPF(src_file=str(resolve_source(name)).encode(), cflags=[f"-I{resolve_source(name).parent}"]))
        return made[-1]

    yield compile_
    for b in made:
        b.cleanup()


def test_log_is_recovered_with_source_lines_when_bcc_prints_none(compiled):
    """The no-log path, forced: the log comes from loading the same function again with a buffer."""
    import bcc

    from packetlab.ebpf.verifier_log import has_verifier_log, recover_verifier_log

    entry = diary.BY_KEY["unbounded-loop"]
    log = recover_verifier_log(compiled(entry.broken), "xdp_mix", bcc.BPF.XDP)
    assert has_verifier_log(log) and re.search(entry.expect, log)
    ex = explain_verifier_log(log, entry.source())
    assert ex.line_number == entry.marked_line and diary.MARKER in ex.source_line
    # the same for a rejection bcc does log itself (EACCES rather than E2BIG)
    entry = diary.BY_KEY["packet-bounds"]
    log = recover_verifier_log(compiled(entry.broken), "xdp_protocols", bcc.BPF.XDP)
    assert explain_verifier_log(log, entry.source()).line_number == entry.marked_line


def test_raw_bpf_load_of_bccs_bytecode_gives_the_verifiers_words(compiled):
    import bcc

    from packetlab.ebpf.verifier_log import raw_logged_load

    entry = diary.BY_KEY["unbounded-loop"]
    result = raw_logged_load(compiled(entry.broken), "xdp_mix", bcc.BPF.XDP)
    assert result.fd is None and result.errno != 0
    assert re.search(entry.expect, result.log) and " @ " not in result.log  # no BTF: no source lines


def test_log_buffer_grows_until_the_whole_log_fits(compiled):
    import bcc

    from packetlab.ebpf import syscall as bpfsys
    from packetlab.ebpf.verifier_log import raw_logged_load

    b = compiled(diary.BY_KEY["unbounded-loop"].broken)
    insns = b.dump_func(b"xdp_mix")

    def load(buf):
        return bpfsys.prog_load(bcc.BPF.XDP, insns, log=buf)

    whole = bpfsys.load_logged(load, start=4096)
    assert not whole.truncated and whole.log.rstrip().splitlines()[-1].startswith("processed")
    assert whole.log == raw_logged_load(b, "xdp_mix", bcc.BPF.XDP).log
    cut = bpfsys.load_logged(load, start=4096, limit=8192)
    assert cut.truncated and len(cut.log) < 8192
