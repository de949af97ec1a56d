"""JupyterLab in the VM: root, but only on the port forward's address, with its token
read from a root-only file — never on a command line, never briefly readable by others.

These run the provisioning pieces that are safe anywhere (the shell functions of
vagrant/jupyter-service.sh on temporary paths, the server's config file); what
needs the VM itself (systemd, the forward) is checked by `vagrant up`."""

from __future__ import annotations

import os
import runpy
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.config import Config

from packetlab.paths import REPO_ROOT

SERVICE_SH = REPO_ROOT / "vagrant" / "jupyter-service.sh"
CONFIG = REPO_ROOT / "vagrant" / "jupyter_server_config.py"


def _bash(script: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; . "{SERVICE_SH}"; {script}'],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )


def test_the_unit_never_listens_everywhere_nor_puts_the_token_on_argv():
    run = _bash("jupyter_unit /packetlab /packetlab/.venv /etc/packetlab/jupyter-token auto")
    assert run.returncode == 0, run.stderr
    unit = run.stdout
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert (
        exec_start == "ExecStart=/packetlab/.venv/bin/jupyter lab --config=/packetlab/vagrant/jupyter_server_config.py"
    )
    assert "0.0.0.0" not in unit and "token" not in exec_start.lower() and "$(cat" not in unit
    assert "Environment=PACKETLAB_JUPYTER_IP=auto" in unit
    assert "Environment=PACKETLAB_JUPYTER_TOKEN_FILE=/etc/packetlab/jupyter-token" in unit


def test_the_vagrantfile_and_provision_sh_use_the_service_as_built():
    vagrantfile = (REPO_ROOT / "Vagrantfile").read_text()
    provision = (REPO_ROOT / "vagrant" / "provision.sh").read_text()
    assert 'provision.sh --jupyter-service"' in vagrantfile  # no user argument: it was parsed and ignored
    assert 'guest_ip: "127.0.0.1", id: "jupyter"' in vagrantfile  # libvirt's ssh -L connects to the VM's loopback
    assert "--ip=0.0.0.0" not in provision and "IdentityProvider.token" not in provision
    assert 'install_jupyter_service "$REPO" "$VENV" "$JUPYTER_IP"' in provision
    for script in ("vagrant/provision.sh", "vagrant/jupyter-service.sh"):
        assert subprocess.run(["bash", "-n", str(REPO_ROOT / script)]).returncode == 0, script


def test_the_token_file_is_created_root_only_and_is_never_readable_by_others(tmp_path):
    token = tmp_path / "etc" / "jupyter-token"
    # mv is where the file appears under its name: record the mode it has then, under the loosest umask
    run = _bash(
        f'umask 000; mv() {{ stat -c %a "$2" >> "{tmp_path}/modes"; command mv "$@"; }}; jupyter_token_file "{token}"'
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "modes").read_text().split() == ["600"]
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    value = token.read_text()
    assert len(value) == 64 and int(value, 16) >= 0
    assert not [p for p in token.parent.iterdir() if p != token]  # no temp file left behind


def test_an_existing_token_is_kept_and_made_root_only(tmp_path):
    token = tmp_path / "jupyter-token"
    token.write_text("a" * 48)
    token.chmod(0o644)  # as the old provision.sh could leave it
    assert _bash(f'jupyter_token_file "{token}"').returncode == 0
    assert token.read_text() == "a" * 48 and stat.S_IMODE(token.stat().st_mode) == 0o600


def _load_config(token: Path, ip: str = "auto") -> Config:
    config = Config()
    old = dict(os.environ)
    os.environ.update(PACKETLAB_JUPYTER_TOKEN_FILE=str(token), PACKETLAB_JUPYTER_IP=ip)
    try:
        runpy.run_path(str(CONFIG), init_globals={"get_config": lambda: config})
    finally:
        os.environ.clear()
        os.environ.update(old)
    return config


def test_the_server_config_reads_the_token_from_a_private_file(tmp_path):
    token = tmp_path / "jupyter-token"
    token.write_text("f" * 64 + "\n")
    token.chmod(0o600)
    config = _load_config(token, ip="127.0.0.1")
    assert config.IdentityProvider.token == "f" * 64
    assert config.ServerApp.ip == "127.0.0.1" and config.ServerApp.allow_root is True
    token.chmod(0o644)
    with pytest.raises(SystemExit, match="mode 600"):
        _load_config(token)


def test_it_listens_where_the_port_forward_delivers():
    bind = runpy.run_path(str(CONFIG))["bind_address"]
    assert bind("auto", "kvm", None) == "127.0.0.1"  # libvirt: ssh -L ...:127.0.0.1:8888 from inside the VM
    assert bind("auto", "qemu", "192.168.121.5") == "127.0.0.1"  # never the shared management network
    assert bind("auto", "oracle", "10.0.2.15") == "10.0.2.15"  # VirtualBox: its NAT engine delivers there
    assert bind("10.0.2.15", "kvm", None) == "10.0.2.15"  # --jupyter-ip ADDR
    with pytest.raises(SystemExit):
        bind("auto", "oracle", None)


def test_jupyter_lab_takes_the_config_file(tmp_path):
    token = tmp_path / "jupyter-token"
    token.write_text("e" * 64)
    token.chmod(0o600)
    run = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter"), "lab", f"--config={CONFIG}", "--show-config"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "HOME": str(tmp_path),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
            "PACKETLAB_JUPYTER_TOKEN_FILE": str(token),
            "PACKETLAB_JUPYTER_IP": "127.0.0.1",
        },
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert ".ip = '127.0.0.1'" in run.stdout and ".token = '" + "e" * 64 in run.stdout
