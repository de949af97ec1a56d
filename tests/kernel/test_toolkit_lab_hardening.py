"""Labs under concurrency and crashes: one owner per lab name, guardians that check
whose record they hold, teardown that always runs, corrupt records, and what a
killed lab leaves outside its namespaces (workdirs, cgroups, runtime processes)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from packetlab import Lab
from packetlab.errors import LabBusy, PacketlabError
from packetlab.paths import REPO_ROOT
from packetlab.testing.child import PYTHON
from packetlab.topo import netns
from packetlab.topo.cleanup import clean
from packetlab.topo.state import LabRecord, is_alive, process_start_time, record_path


def _child(code: str, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-c", code, *args],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _finish(child: subprocess.Popen) -> None:
    if child.poll() is None:
        assert child.stdin is not None
        child.stdin.close()  # the children below close their lab when stdin ends
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


SLOW_CLAIM = """
import sys, time
from packetlab.topo import state
from packetlab import Lab
real_save = state.LabRecord.save
def slow_save(self):  # widen the window between claiming the name and writing the record
    time.sleep(1.5)
    real_save(self)
state.LabRecord.save = slow_save
print('claiming', flush=True)
lab = Lab(sys.argv[1]).start()
print('ready', flush=True)
with lab:
    sys.stdin.read()
"""


def test_two_processes_starting_one_lab_at_once_one_gets_lab_busy_naming_the_owner():
    child = _child(SLOW_CLAIM, "hxr")
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "claiming", child.stderr.read() if child.stderr else ""
        time.sleep(0.5)  # the child is inside start(): name claimed, record not yet written
        lab = Lab("hxr")
        try:
            with pytest.raises(LabBusy, match=rf"process {child.pid}\b"):
                lab.start()
        finally:
            lab.close()
        assert child.stdout.readline().strip() == "ready"
        assert LabRecord.load(record_path("hxr")).pid == child.pid
    finally:
        _finish(child)
    assert not record_path("hxr").exists()


SLOW_GUARDIAN = """
import sys, time
from packetlab.topo import guardian
real = guardian.teardown
def slow(record, **kw):  # a guardian that read the old record, then got descheduled
    print('tearing', flush=True)
    time.sleep(2)
    return real(record, **kw)
guardian.teardown = slow
sys.exit(guardian.main(sys.argv[1:]))
"""


def test_a_dead_owners_guardian_leaves_the_lab_a_new_process_restarted_alone():
    gone = subprocess.Popen(["true"])
    gone.wait()
    old = LabRecord("hxg", gone.pid, 1, namespaces=["hxg-h1"], generation="old")
    old.save()  # the record of a kernel that died (SIGKILL) without cleaning
    guardian = _child(SLOW_GUARDIAN, "hxg", str(gone.pid), "old")
    assert guardian.stdout is not None
    assert guardian.stdout.readline().strip() == "tearing", guardian.stderr.read() if guardian.stderr else ""
    with Lab("hxg") as lab:  # the restarted kernel builds the same lab again
        lab.host("h1")
        guardian.wait(20)
        assert netns.exists("hxg-h1"), "the old guardian tore down the new lab's namespace"
        assert LabRecord.load(record_path("hxg")).pid == os.getpid()
    assert not netns.exists("hxg-h1")


class _Broken:
    def detach(self) -> None:
        raise RuntimeError("detach failed")


def test_close_reaches_teardown_when_a_detach_raises():
    lab = Lab("hxc").start()
    lab.host("h1")
    lab.track(_Broken())
    with pytest.raises(RuntimeError, match="detach failed"):
        lab.close()
    assert not netns.exists("hxc-h1") and not record_path("hxc").exists()
    assert not lab.running
    Lab("hxc").start().close()  # the name is free again


def test_a_corrupt_record_is_reported_and_cleared_by_packetlab_clean():
    path = record_path("hxk")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"lab": "hxk", "pid": ')  # a record cut short (disk full, a crash mid-write by hand)
    try:
        with pytest.raises(PacketlabError, match="corrupt") as err:
            Lab("hxk").start()
        assert "packetlab clean --lab hxk" in str(err.value)
        removed, _ = clean(lab="hxk", dry_run=True)
        assert any("corrupt record" in r for r in removed) and path.exists()
        removed, _ = clean(lab="hxk")
        assert any("corrupt record" in r for r in removed) and not path.exists()
        Lab("hxk").start().close()
    finally:
        path.unlink(missing_ok=True)


KILLED_WITH_RUNTIME_STATE = """
import subprocess, sys, tempfile
from packetlab import Lab
from packetlab.topo.cgroups import cgroup_dirs
lab = Lab('hxw').start()
workdir = tempfile.mkdtemp(prefix='packetlab-hxw-node-')
lab.track_workdir(workdir)
open(workdir + '/lease', 'w').write('10.244.0.2')
lab.track_cgroup('packetlab-hxw-rt')
cg = cgroup_dirs('packetlab-hxw-rt')[0] / 'c1'
cg.mkdir(parents=True)
sleeper = [sys.executable, '-c', 'import time; time.sleep(300)']
container = subprocess.Popen(sleeper, start_new_session=True)  # a container's init, in its cgroup
(cg / 'cgroup.procs').write_text(str(container.pid))
shim = subprocess.Popen([*sleeper, workdir], start_new_session=True)  # a shim/conmon: reparented, own session
lab.track_pid(shim.pid, 'shim')
print('ready', workdir, cg, container.pid, shim.pid, flush=True)
sys.stdin.read()
"""


def test_clean_removes_the_workdirs_cgroups_and_runtime_processes_of_a_killed_lab():
    from packetlab.topo.cgroups import cgroup_dirs

    child = _child(KILLED_WITH_RUNTIME_STATE, PACKETLAB_GUARDIAN="0")
    assert child.stdout is not None
    line = child.stdout.readline().split()
    assert line[:1] == ["ready"], child.stderr.read() if child.stderr else ""
    workdir, cg, pids = Path(line[1]), Path(line[2]), [int(p) for p in line[3:]]
    starts = [process_start_time(p) for p in pids]
    child.kill()
    child.wait(5)
    assert workdir.is_dir() and cg.is_dir() and all(is_alive(p, s) for p, s in zip(pids, starts))
    removed, _ = clean(lab="hxw")
    assert not workdir.exists(), removed
    assert not any(d.exists() for d in cgroup_dirs("packetlab-hxw-rt")), removed
    deadline = time.monotonic() + 5
    while any(is_alive(p, s) for p, s in zip(pids, starts)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(is_alive(p, s) for p, s in zip(pids, starts)), removed
    assert not record_path("hxw").exists()


def test_workdirs_and_cgroups_outside_the_labs_own_names_are_refused():
    with Lab("hxv") as lab:
        with pytest.raises(PacketlabError, match="outside"):
            lab.track_workdir(tempfile.gettempdir())
        with pytest.raises(PacketlabError, match="outside"):
            lab.track_workdir("/etc")
        with pytest.raises(PacketlabError, match="not this lab's"):
            lab.track_cgroup("system.slice")
        with pytest.raises(PacketlabError, match="not this lab's"):
            lab.track_cgroup("packetlab-hxv-a/../../system.slice")
