"""JupyterLab's settings for the VM's service (packetlab-jupyter.service, see vagrant/jupyter-service.sh).

The server runs as root — lab kernels create namespaces and load BPF programs in
their own process — so two things keep it to the person at the host's keyboard:

* it listens only on the address Vagrant's port forward delivers to: 127.0.0.1
  for libvirt (the forward is an ssh tunnel that connects from inside the VM:
  the Vagrantfile sets guest_ip 127.0.0.1), the NAT interface's own address for
  VirtualBox (its NAT engine delivers there; nothing but the forward reaches that
  network). Never 0.0.0.0: libvirt's management network is shared with the host
  and its other VMs. PACKETLAB_JUPYTER_IP=ADDR overrides the choice.
* the token is read here from a root-only file (never on a command line, where
  `ps` shows it to every user); a token file others can read is refused.
"""

from __future__ import annotations

import os
import stat
import subprocess

TOKEN_FILE = os.environ.get("PACKETLAB_JUPYTER_TOKEN_FILE", "/etc/packetlab/jupyter-token")


def read_token(path: str) -> str:
    """The token from `path`, which must be a regular file only its owner (root) can read."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or st.st_uid != os.geteuid():
        raise SystemExit(
            f"{path} must be a regular file owned by this user and readable by it alone (mode 600): "
            f"it is mode {stat.S_IMODE(st.st_mode):o}, owner uid {st.st_uid}; fix: sudo chmod 600 {path}"
        )
    with open(path) as f:
        token = f.read().strip()
    if len(token) < 32:
        raise SystemExit(f"{path} holds no token (or a short one); re-run vagrant/provision.sh --jupyter-service")
    return token


def _default_route_source() -> str | None:
    out = subprocess.run(["ip", "-4", "route", "get", "1.1.1.1"], capture_output=True, text=True).stdout.split()
    return out[out.index("src") + 1] if "src" in out else None


def _virtualization() -> str:
    try:
        return subprocess.run(["systemd-detect-virt"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        return "none"


def bind_address(setting: str, virt: str, nat_address: str | None) -> str:
    """Where to listen: `setting` unless it is 'auto', then the port forward's address (module doc)."""
    if setting != "auto":
        return setting
    if virt == "oracle":  # VirtualBox: the NAT engine forwards to the guest's NAT address
        if not nat_address:
            raise SystemExit("VirtualBox VM without an IPv4 default route: set PACKETLAB_JUPYTER_IP=<NAT address>")
        return nat_address
    return "127.0.0.1"  # libvirt (ssh -L ...:127.0.0.1:8888 inside the VM) and anything else


if "get_config" in globals():  # loaded by `jupyter lab --config=this file`
    c = get_config()  # type: ignore[name-defined]  # noqa: F821
    setting = os.environ.get("PACKETLAB_JUPYTER_IP", "auto")
    virt = _virtualization() if setting == "auto" else ""
    c.ServerApp.ip = bind_address(setting, virt, _default_route_source() if virt == "oracle" else None)
    c.ServerApp.port = int(os.environ.get("PACKETLAB_JUPYTER_PORT", "8888"))
    c.ServerApp.open_browser = False
    c.ServerApp.allow_root = True
    c.ServerApp.root_dir = os.environ.get("PACKETLAB_JUPYTER_ROOT_DIR", os.getcwd())
    c.IdentityProvider.token = read_token(TOKEN_FILE)
