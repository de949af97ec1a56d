"""`packetlab dhcp` without root: a broken pools file exits 1 naming its fields, the root namespace is
refused (exit 2) before anything starts, and --help lists the exit codes."""

from __future__ import annotations

import pytest

from packetlab.paths import REPO_ROOT
from packetlab.tools.dhcp.cli import main

EXAMPLES = REPO_ROOT / "packetlab/tools/dhcp/examples"


def test_validate(capsys):
    assert main(["validate", str(EXAMPLES / "pools.yaml")]) == 0
    assert "ok: pool subscribers vlan=0" in capsys.readouterr().out
    assert main(["validate", str(EXAMPLES / "broken.yaml")]) == 1
    err = capsys.readouterr().err
    assert "broken.yaml: pools[0].router: 10.68.0.1 is not in 10.67.0.0/24" in err
    assert main(["validate", str(EXAMPLES / "missing.yaml")]) == 1


def test_serve_refuses_the_root_namespace(capsys):
    assert main(["serve", "--config", str(EXAMPLES / "pools.yaml"), "--dev", "eth0"]) == 2
    assert "refusing to serve DHCP in the root network namespace" in capsys.readouterr().err


def test_serve_refuses_a_broken_config_first(capsys):
    assert main(["serve", "--config", str(EXAMPLES / "broken.yaml"), "--dev", "eth0"]) == 1


def test_help_lists_exit_codes(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "exit codes:" in capsys.readouterr().out
