"""pytest plugin: the ``lab`` fixtures — a fresh, uniquely named `Lab` per test, proven gone after it.

Registered for the whole test tree by ``tests/conftest.py`` (``pytest_plugins``); elsewhere load it
with ``pytest -p packetlab.testing.fixtures``. Like pyroute2's test fixtures, each fixture states
its name, scope and dependencies:

``lab``
    scope: function; depends on: ``request``. A started :class:`~packetlab.topo.lab.Lab` with a
    name no other lab on the machine has (``t`` + 3 random characters: short, so the test's own
    node names still fit the 15 characters of ``<lab>-<node>``). The test adds hosts, links and
    programs; teardown closes the lab and asserts that every namespace, process and pin it
    recorded is gone, and so is its record in ``/run/packetlab/labs``.

``module_lab``
    scope: module; depends on: ``request``. The same, shared by the tests of one module — for a
    topology that is slow to build and that the tests only read from. Build it in a module-scoped
    fixture of the test file::

        @pytest.fixture(scope="module")
        def topo(module_lab):
            h1, h2 = module_lab.host("h1"), module_lab.host("h2")
            module_lab.link(h1, h2, ip="10.0.0.1/24", peer_ip="10.0.0.2/24")
            return module_lab

``lab_records``
    scope: session; depends on: nothing. The record of everything the fixtures created in this run:
    one :class:`CreatedLab` per lab (who asked for it, its name, and its last on-disk record of
    namespaces, links, processes and pins before teardown). Each test's entry also goes into its
    ``user_properties`` (so ``--junitxml`` lists it).

Unique names mean two tests — or two test runs by different people on one machine — never share
a lab: a name in use (a live record, or a namespace with its prefix) is never picked. Tests that
exercise the lifecycle itself (crash cleanup, ``packetlab clean``, a lab re-opened in the same
process) keep building their own ``Lab`` on purpose.
"""

from __future__ import annotations

import os
import secrets
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from packetlab.errors import LabBusy
from packetlab.topo import cgroups, netns
from packetlab.topo.lab import Lab
from packetlab.topo.servers import startup_scale
from packetlab.topo.state import LabRecord, is_alive, record_path

NAME_PREFIX = "t"
_ALPHABET = string.ascii_lowercase + string.digits
_ATTEMPTS = 50


@dataclass
class CreatedLab:
    """What one fixture lab made: its on-disk record (namespaces, links, processes, pins in creation
    order) as read just before teardown; None if the lab had already lost it."""

    requested_by: str  # the test's (or module's) node id
    name: str
    record: LabRecord | None = None

    def describe(self) -> str:
        """One line: who asked, and what the lab held."""
        rec = self.record
        if rec is None:
            return f"{self.name} ({self.requested_by}): no record"
        return (
            f"{self.name} ({self.requested_by}): {len(rec.namespaces)} namespaces, {len(rec.links)} links, "
            f"{len(rec.processes)} processes, {len(rec.pins)} pins"
        )


_created: list[CreatedLab] = []


def _name_in_use(name: str) -> bool:
    """True if a lab record or any namespace already carries this lab name."""
    if record_path(name).exists():
        return True
    return any(ns == name or ns.startswith(f"{name}-") for ns in _namespaces())


def _namespaces() -> list[str]:
    return sorted(os.listdir(netns.NETNS_DIR)) if os.path.isdir(netns.NETNS_DIR) else []


def lab_namespaces(name: str) -> list[str]:
    """The namespaces of lab `name` that exist now (``<name>-<node>``), sorted."""
    return [ns for ns in _namespaces() if ns.startswith(f"{name}-")]


def wait_until_gone(name: str, timeout: float = 10.0) -> bool:
    """Wait until lab `name` has no namespace and no record left — for tests of the cleanup that
    someone else does (atexit, a signal handler, the guardian); False if it had not after `timeout` s.

    The guardian is a Python process started when the owner dies, so the wait grows with
    PACKETLAB_STARTUP_SCALE (an emulated CPU, as in vagrant/kernel61.sh's guest, needs far longer)."""
    deadline = time.monotonic() + timeout * startup_scale()
    while time.monotonic() < deadline:
        if not lab_namespaces(name) and not record_path(name).exists():
            return True
        time.sleep(0.1)
    return False


def unique_lab() -> Lab:
    """Start a `Lab` under a fresh random name (retrying while names are taken)."""
    for _ in range(_ATTEMPTS):
        name = NAME_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(3))
        if _name_in_use(name):
            continue
        try:
            return Lab(name).start()
        except LabBusy:  # another process claimed it between our look and our start
            continue
    raise LabBusy(
        f"no free lab name after {_ATTEMPTS} tries",
        cause=f"thousands of labs named {NAME_PREFIX}xxx exist (leftovers of crashed test runs?)",
        fix="list them with `packetlab clean --dry-run` and remove them with `packetlab clean`",
    )


def snapshot(lab: Lab, requested_by: str) -> CreatedLab:
    """Read the lab's on-disk record (it lists everything it made) before the lab is closed."""
    path = record_path(lab.name)
    return CreatedLab(requested_by, lab.name, LabRecord.load(path) if path.exists() else None)


def leftovers(created: CreatedLab) -> list[str]:
    """What of `created` still exists: namespaces, live processes, pins, workdirs, cgroups, the record.
    Empty when clean."""
    left = [f"namespace {ns}" for ns in lab_namespaces(created.name)]
    rec = created.record
    if rec is not None:
        left += [f"namespace {ns}" for ns in rec.namespaces if netns.exists(ns)]
        left += [f"process {p.pid} ({' '.join(p.argv)[-60:]})" for p in rec.processes if is_alive(p.pid, p.start_time)]
        left += [f"pin {pin}" for pin in rec.pins if os.path.exists(pin)]
        left += [f"working directory {d}" for d in rec.workdirs if os.path.exists(d)]
        left += [f"cgroup {d}" for name in rec.cgroups for d in cgroups.existing(name)]
    if record_path(created.name).exists():
        left.append(f"record {record_path(created.name)}")
    return sorted(set(left))


def _lab_for(request: pytest.FixtureRequest) -> Iterator[Lab]:
    lab = unique_lab()
    try:
        yield lab
    finally:
        created = snapshot(lab, request.node.nodeid)
        lab.close()
        _created.append(created)
        if isinstance(request.node, pytest.Item):
            request.node.user_properties.append(("lab", created.describe()))
        left = leftovers(created)
        assert not left, f"lab {created.name} of {created.requested_by} left behind: {', '.join(left)}"


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A started, uniquely named Lab for one test; torn down and checked gone after it."""
    yield from _lab_for(request)


@pytest.fixture(scope="module")
def module_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A started, uniquely named Lab shared by one test module; torn down and checked gone after it."""
    yield from _lab_for(request)


@pytest.fixture(scope="session")
def lab_records() -> list[CreatedLab]:
    """Everything the lab fixtures created in this run (filled in as labs are torn down)."""
    return _created
