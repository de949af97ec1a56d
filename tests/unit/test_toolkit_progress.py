"""Learner progress (packetlab.course.progress): where it is kept, what `graded` records, the CLI."""

from __future__ import annotations

import pwd

import pytest

from packetlab import cli
from packetlab.course import progress
from packetlab.course.grading import CheckFailed, graded, passed, reference_needed, require, use_reference


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("PACKETLAB_DATA_DIR", str(tmp_path))
    return tmp_path


@graded("answer 42 yourself")
def check_answer(answer):
    require(answer == 42, "demo", f"{answer!r} is not 42")
    return passed("demo")


check_answer.__wrapped__.__module__ = "packetlab.course.m07_xdp.exercises"  # type: ignore[attr-defined]  # as if in module 07


def test_data_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("PACKETLAB_DATA_DIR", str(tmp_path / "explicit"))
    assert progress.data_dir() == tmp_path / "explicit"
    monkeypatch.delenv("PACKETLAB_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SUDO_USER", raising=False)
    assert progress.data_dir() == tmp_path / "xdg" / "packetlab"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert progress.data_dir() == tmp_path / "home" / ".local" / "share" / "packetlab"


def test_under_sudo_the_invoking_users_folder(monkeypatch):
    """Labs run as root (sudo); the progress belongs to the learner who typed sudo."""
    monkeypatch.delenv("PACKETLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("SUDO_USER", "nobody")
    monkeypatch.setattr(progress.os, "geteuid", lambda: 0)
    home = pwd.getpwnam("nobody").pw_dir
    assert str(progress.data_dir()) == f"{home}/.local/share/packetlab"
    entry = pwd.getpwnam("nobody")
    assert progress._owner() == (entry.pw_uid, entry.pw_gid)
    monkeypatch.setattr(progress.os, "geteuid", lambda: 1000)  # not root: SUDO_USER means nothing
    monkeypatch.setenv("XDG_DATA_HOME", "/xdg")
    assert progress._owner() is None and str(progress.data_dir()) == "/xdg/packetlab"


def test_module_of():
    assert progress.module_of("packetlab.course.m07_xdp.exercises") == "07"
    assert progress.module_of("m10_kubernetes_networking.exercises") == "10"
    assert progress.module_of("packetlab.course.m11a_telemetry_sketch.exercises") == "11a"
    assert progress.module_of("somewhere.else") == "??"


def test_graded_records_own_pass_reference_and_failure(store, capsys):
    with pytest.raises(CheckFailed):
        check_answer(41)
    check_answer(42)  # the learner's own answer
    answer = use_reference(None, 42)
    check_answer(answer)  # the reference's
    assert progress.recorded() == [
        ("07", "check_answer", "failed"),
        ("07", "check_answer", "passed"),
        ("07", "check_answer", "reference"),
    ]
    assert "reference solution used" in capsys.readouterr().out


def test_a_run_all_records_reference_never_passed(store):
    """What a notebook run top to bottom does: the solution cell answers, the check credits the reference."""
    answer = None  # the answer cell, untouched
    answer = use_reference(answer, 42)  # the collapsed solution cell
    check_answer(answer)
    reference_needed(True)  # a solution cell that builds something
    check_answer(42)
    assert [o for _, _, o in progress.recorded()] == ["reference", "reference"]
    p = progress.summary()["07"]
    assert (p.attempted, p.passed, p.reference) == (1, 0, 1)


def test_summary_counts_each_exercise_once_and_own_pass_wins(store):
    progress.record("07", "check_a", "reference")
    progress.record("07", "check_a", "passed")
    progress.record("07", "check_b", "failed")
    progress.record("03", "check_c", "reference")
    s = progress.summary()
    assert (s["07"].attempted, s["07"].passed, s["07"].reference) == (2, 1, 0)
    assert (s["03"].attempted, s["03"].passed, s["03"].reference) == (1, 0, 1)
    assert s["07"].exercises >= 2 and s["01"].attempted == 0  # every course module is listed
    assert "1 of" in s["07"].line() and "no exercise checked yet" in s["01"].line()


def test_show_progress_one_line(store, capsys):
    progress.show_progress("06")
    assert capsys.readouterr().out.startswith("Module 06 progress: no exercise checked yet")
    progress.record("06", "check_x", "passed")
    progress.show_progress("06")
    assert "1 of" in capsys.readouterr().out


def test_recording_never_breaks_a_check(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PACKETLAB_DATA_DIR", str(blocker / "sub"))  # a folder under a file: cannot exist
    monkeypatch.setattr(progress, "_warned", False)
    check_answer(42)
    check_answer(42)
    out = capsys.readouterr().out
    assert out.count("progress not recorded") == 1 and out.count("correct") == 2


def test_cli_progress_and_reset(store, capsys):
    progress.record("08", "check_policy", "passed")
    assert cli.main(["progress"]) == 0
    out = capsys.readouterr().out
    assert "reference used" in out and "08 milestone xdp firewall" in out and str(store) in out
    assert cli.main(["progress", "--reset", "--yes"]) == 0
    assert "removed" in capsys.readouterr().out and progress.recorded() == []
    assert cli.main(["progress", "--reset", "--yes"]) == 0
    assert "no progress recorded yet" in capsys.readouterr().out


def test_cli_reset_asks_without_yes(store, monkeypatch, capsys):
    progress.record("08", "check_policy", "passed")
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert cli.main(["progress", "--reset"]) == 0
    assert "nothing changed" in capsys.readouterr().out and progress.recorded()
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert cli.main(["progress", "--reset"]) == 0 and progress.recorded() == []


def test_docs_home_shows_progress_only_when_served(store):
    from packetlab.docsite import hooks

    progress.record("07", "check_actions", "passed")
    readme = "# packetlab\n\nintro\n\n## The modules\n\n| NN |\n"
    page = hooks._with_progress(readme)
    assert page.index("## Your progress") < page.index("## The modules")
    assert "| 07 xdp |" in page and "| 1 | 1 | 0 |" in page and str(store) in page
    hooks.on_startup(command="build", dirty=False)
    assert not hooks._serving  # a published build (make test, docs-build) never carries anyone's progress
    hooks.on_startup(command="serve", dirty=False)
    assert hooks._serving
    hooks.on_startup(command="build", dirty=False)
