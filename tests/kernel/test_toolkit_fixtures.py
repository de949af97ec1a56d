"""The lab fixtures (packetlab.testing.fixtures): unique short names, a record of what each lab
made, and a teardown check that finds anything left behind."""

from __future__ import annotations

import pytest

from packetlab.testing.fixtures import NAME_PREFIX, leftovers, snapshot, unique_lab
from packetlab.topo.state import record_path

_seen: dict[str, str] = {}


def test_each_lab_gets_a_short_name_of_its_own(lab):
    other = unique_lab()
    try:
        assert other.name != lab.name
        for name in (lab.name, other.name):
            assert name.startswith(NAME_PREFIX) and len(name) == 4  # leaves 10 characters for node names
    finally:
        other.close()
    lab.host("h1")
    _seen["name"] = lab.name


def test_the_record_lists_what_the_previous_test_made(lab_records):
    if "name" not in _seen:
        pytest.skip("runs after test_each_lab_gets_a_short_name_of_its_own")
    made = next(r for r in lab_records if r.name == _seen["name"])
    assert made.requested_by.endswith("::test_each_lab_gets_a_short_name_of_its_own")
    assert made.record is not None and made.record.namespaces == [f"{made.name}-h1"]
    assert leftovers(made) == []


def test_leftovers_name_everything_until_the_lab_is_closed():
    lab = unique_lab()
    try:
        h1 = lab.host("h1")
        sleeper = h1.popen(["sleep", "30"])
        made = snapshot(lab, "here")
        left = leftovers(made)
        assert f"namespace {lab.name}-h1" in left and f"record {record_path(lab.name)}" in left
        assert any(item.startswith(f"process {sleeper.pid} ") for item in left), left
    finally:
        lab.close()
    assert leftovers(made) == []
