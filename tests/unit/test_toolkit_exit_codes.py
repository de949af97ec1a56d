"""Every packetlab command ends with the same exit codes (packetlab.errors.EXIT_CODES):
0 success, 1 input refused / a check found a problem, 2 usage, 3 the system refused, 130 interrupted.

The mapping is checked in process (`run_cli`), then each CLI is run for real as a child
process: none of these runs changes anything (the namespaces named do not exist), so they
need no root.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import pytest

from packetlab.errors import (
    EXIT_CODES,
    InputError,
    PacketlabError,
    UsageError,
    exit_code,
    run_cli,
)
from packetlab.paths import REPO_ROOT
from packetlab.tools.firewall import EXAMPLES as FW_EXAMPLES
from packetlab.tools.firewall.program import CapacityError
from packetlab.tools.firewall.rules import Problem, RuleError
from packetlab.tools.lb import EXAMPLES as LB_EXAMPLES
from packetlab.tools.lb.config import ConfigError

NO_SUCH_NS = f"plx-none-{uuid.uuid4().hex[:6]}"  # a namespace nobody made


def _raise(exc: BaseException):
    def fn():
        raise exc

    return fn


@pytest.mark.parametrize(
    "exc, code",
    [
        (RuleError([Problem("r.yaml", 3, "dport", "bad port")]), 1),
        (ConfigError(["vips[0].port: bad"], "lb.yaml"), 1),
        (CapacityError("too big"), 1),
        (InputError("refused"), 1),
        (UsageError("no --netns"), 2),
        (PacketlabError("the kernel said no"), 3),
        (PermissionError(1, "Operation not permitted"), 3),
        (KeyboardInterrupt(), 130),
    ],
)
def test_each_kind_of_error_has_its_exit_code(exc, code, capsys):
    assert exit_code(exc) == code
    assert run_cli("prog", _raise(exc)) == code
    err = capsys.readouterr().err
    assert err.startswith("prog: ") if code != 130 else err == ""  # a message, never a traceback


def test_a_command_returns_0_or_1_itself():
    assert run_cli("prog", lambda: None) == 0
    assert run_cli("prog", lambda: 0) == 0
    assert run_cli("prog", lambda: 1) == 1  # a check found a problem (doctor, a stale instance)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "packetlab", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )


@pytest.mark.parametrize(
    "args, code, says",
    [
        # packetlab itself
        (["version"], 0, ""),
        (["--no-such-option"], 2, "usage:"),
        # packetlab firewall
        (["firewall", "check", str(FW_EXAMPLES / "basic.yaml")], 0, ""),
        (["firewall", "check", str(FW_EXAMPLES / "broken.yaml")], 1, "broken.yaml:10"),
        (["firewall", "check", "no/such/rules.yaml"], 1, "cannot read rule file"),
        (["firewall", "apply", str(FW_EXAMPLES / "basic.yaml")], 2, "usage:"),  # --dev missing
        (["firewall", "apply", str(FW_EXAMPLES / "basic.yaml"), "--dev", "eth0"], 2, "refusing"),  # the host
        (["firewall", "apply", str(FW_EXAMPLES / "basic.yaml"), "--netns", NO_SUCH_NS, "--dev", "eth0"], 3, NO_SUCH_NS),
        # packetlab lb
        (["lb", "validate", str(LB_EXAMPLES / "web-nat.yaml")], 0, ""),
        (["lb", "validate", str(LB_EXAMPLES / "broken.yaml")], 1, "nothing was applied"),
        (["lb", "validate", "--bogus", "x.yaml"], 2, "usage:"),
        (["lb", "apply", str(LB_EXAMPLES / "web-nat.yaml"), "--dev", "eth0"], 2, "refusing"),  # the host
        (["lb", "apply", str(LB_EXAMPLES / "web-nat.yaml"), "--netns", NO_SUCH_NS, "--dev", "eth0"], 3, NO_SUCH_NS),
        (["lb", "status", "--netns", NO_SUCH_NS, "--dev", "eth0"], 3, "no load balancer"),
    ],
)
def test_cli_exit_codes(args, code, says):
    r = _run(*args)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert says in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("cli", [[], ["firewall"], ["lb"], ["lb", "apply"], ["firewall", "metrics"]])
def test_every_help_states_the_exit_codes(cli):
    r = _run(*cli, "--help")
    assert r.returncode == 0 and EXIT_CODES in r.stdout


def test_ctrl_c_exits_130():
    """A command that runs until Ctrl-C (a metrics endpoint on loopback) ends with 130."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "packetlab", "firewall", "metrics", "--listen", "127.0.0.1:0"],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "serving" in proc.stderr.readline()  # it is in its wait loop now
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
