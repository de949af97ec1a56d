"""trafgen's back-pressure exit: the flood restarts for the time left; any other failure is reported.

The kernel side (a real flood) is in the kernel tests; this checks the restart rule itself on
scripted trafgen outcomes, because a full send buffer cannot be produced on demand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from packetlab.errors import PacketlabError
from packetlab.topo import traffic
from packetlab.topo.netns import CommandResult

BACKPRESSURE = CommandResult([], 1, "", "Flushing TX_RING failed: Resource temporarily unavailable!\n")
TIMED_OUT = CommandResult([], 124, "", "")


class ScriptedSender:
    """Answers each run() with the next scripted trafgen outcome and records the time it was given."""

    def __init__(self, outcomes: list[CommandResult]):
        self.outcomes = list(outcomes)
        self.timeouts: list[float] = []

    def run(self, cmd, *, timeout: float = 30, **_):
        self.timeouts.append(float(cmd[cmd.index("timeout") + 3]))
        return self.outcomes.pop(0)


def test_backpressure_exit_restarts_trafgen_for_the_time_left():
    sender = ScriptedSender([BACKPRESSURE, BACKPRESSURE, TIMED_OUT])
    traffic._send_for(sender, "eth0", Path("/nonexistent/flood.trafgen"), seconds=5.0, cpus=1)
    assert len(sender.timeouts) == 3
    assert sender.timeouts[0] <= 5.0 and sender.timeouts[-1] <= sender.timeouts[0]


def test_other_trafgen_failures_are_reported_with_the_cause():
    sender = ScriptedSender([CommandResult([], 1, "", "Cannot find device eth9\n")])
    with pytest.raises(PacketlabError) as err:
        traffic._send_for(sender, "eth9", Path("/nonexistent/flood.trafgen"), seconds=1.0, cpus=1)
    assert "trafgen failed" in str(err.value) and "eth9" in str(err.value)


def test_endless_backpressure_is_an_error_not_a_hang():
    sender = ScriptedSender([BACKPRESSURE] * (traffic._MAX_RESTARTS + 1))
    with pytest.raises(PacketlabError, match="full send buffer"):
        traffic._send_for(sender, "eth0", Path("/nonexistent/flood.trafgen"), seconds=60.0, cpus=1)
