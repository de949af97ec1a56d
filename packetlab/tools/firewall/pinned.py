"""Installing the firewall from the CLI: pinned in bpffs so it outlives the command.

`packetlab firewall apply` exits right after applying, but the firewall must
keep running, and the next `status`, `apply` or `remove` must find it. So the
program and its maps are pinned under
``/sys/fs/bpf/packetlab/firewall/<netns>-<dev>/`` and the control plane's
bookkeeping (rule names, counter numbers) is kept in
``/run/packetlab/firewall/<netns>-<dev>.json``.

Safety: the firewall is only attached inside a namespace that a packetlab
lab created, unless the caller says `allow_host=True` (``--allow-host``) —
following the lab must never lock anyone out of their own machine. The
namespace and interface are checked as names (`packetlab.topo.names`) when a
`Target` is made, so neither can walk the pin directory or the state file out
of their directories, and `remove` deletes only the pins the firewall makes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packetlab.ebpf.fdinfo import prog_id
from packetlab.ebpf.loader import attached_xdp_prog_id
from packetlab.ebpf.syscall import obj_get, obj_pin
from packetlab.errors import MissingRequirement, PacketlabError, UsageError
from packetlab.tools.firewall.compiler import compile_rules
from packetlab.tools.firewall.layout import MAP_NAMES
from packetlab.tools.firewall.program import ApplyResult, Firewall, open_maps_pinned, save_json
from packetlab.tools.firewall.rules import RuleSet
from packetlab.topo import netns as _netns
from packetlab.topo.names import check_name, check_namespace, check_netns_name, lab_namespaces

BPFFS = Path(os.environ.get("PACKETLAB_BPFFS", "/sys/fs/bpf"))
PIN_ROOT = BPFFS / "packetlab" / "firewall"
STATE_ROOT = Path(os.environ.get("PACKETLAB_FIREWALL_STATE", "/run/packetlab/firewall"))
XDP_FLAGS = {"generic": 2, "native": 4}
XDP_FLAGS_UPDATE_IF_NOEXIST = 1


@dataclass
class Target:
    """Where a firewall is (or will be) attached."""

    netns: str | None  # None: the namespace this command runs in (the host)
    dev: str

    def __post_init__(self) -> None:
        """Names only: both end up in paths (`pin_dir`, `state_file`)."""
        if self.netns is not None:
            check_netns_name(self.netns)
        check_name(self.dev)

    @property
    def key(self) -> str:
        return f"{self.netns or 'host'}-{self.dev}"

    @property
    def pin_dir(self) -> Path:
        return PIN_ROOT / self.key

    @property
    def state_file(self) -> Path:
        return STATE_ROOT / f"{self.key}.json"

    def __str__(self) -> str:
        return f"{self.netns or '(host)'}:{self.dev}"


def check_target(target: Target, *, allow_host: bool = False) -> None:
    """Refuse anything but a lab namespace, unless explicitly allowed."""
    if target.netns is None:
        if not allow_host:
            raise UsageError(
                "refusing to attach the firewall to the host's own interface",
                cause="no --netns was given, so the rules would filter this machine's traffic — "
                "a default-drop rule set would cut your own SSH session",
                fix="give --netns <lab namespace> (see `ip netns list`), or add --allow-host if you "
                "really mean the host",
            )
        return
    check_namespace(target.netns, allow_host=allow_host, labs=lab_namespaces(), tool="the firewall")


def _require_bpffs() -> None:
    try:
        st = os.statvfs(BPFFS)
    except OSError:
        st = None
    if st is None or not os.path.ismount(BPFFS):
        raise MissingRequirement(
            f"bpffs is not mounted at {BPFFS}",
            cause="pinning the firewall's program and maps needs the BPF filesystem",
            fix=f"mount it: sudo mount -t bpf bpf {BPFFS}",
        )


# ---- XDP on an interface, by namespace name ---------------------------------------------------
def _ipr(netns: str | None):
    from packetlab.topo.rtnl import iproute

    return iproute(netns)  # None: this process's (the host's) namespace


def _ifindex(ipr: Any, target: Target) -> int:
    idx = ipr.link_lookup(ifname=target.dev)
    if not idx:
        raise PacketlabError(
            f"no interface {target.dev!r} in {target.netns or 'the host namespace'}",
            fix=f"list interfaces: ip {'-n ' + target.netns + ' ' if target.netns else ''}link",
        )
    return idx[0]


def attached_prog_id(target: Target) -> int | None:
    """The id of the XDP program on the target's interface (None if none, or the interface is gone)."""
    return attached_xdp_prog_id(target.netns, target.dev)


def xdp_attach(target: Target, prog_fd: int, mode: str, *, exclusive: bool = True) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    flags = XDP_FLAGS[mode] | (XDP_FLAGS_UPDATE_IF_NOEXIST if exclusive else 0)
    with _ipr(target.netns) as ipr:
        idx = _ifindex(ipr, target)
        try:
            # IFLA_XDP with explicit flags (pyroute2's xdp_fd= shortcut drops xdp_flags)
            ipr.link("set", index=idx, xdp={"attrs": [("IFLA_XDP_FD", prog_fd), ("IFLA_XDP_FLAGS", flags)]})
        except NetlinkError as exc:
            if exc.code == errno.EBUSY:
                raise PacketlabError(
                    f"{target} already has another XDP program attached",
                    cause="the firewall does not replace programs it did not install",
                    fix=f"detach it first (ip {'-n ' + target.netns if target.netns else ''} link "
                    f"set {target.dev} xdp off)",
                ) from None
            raise PacketlabError(
                f"cannot attach the firewall to {target} in {mode} mode",
                cause=f"netlink error {exc.code}: {os.strerror(exc.code)}",
                fix="try --mode generic (native XDP needs driver support; veth has it)",
            ) from None


def xdp_detach(target: Target, mode: str) -> None:
    with _ipr(target.netns) as ipr:
        idx = _ifindex(ipr, target)
        ipr.link("set", index=idx, xdp={"attrs": [("IFLA_XDP_FD", -1), ("IFLA_XDP_FLAGS", XDP_FLAGS.get(mode, 0))]})


# ---- install / open / remove ------------------------------------------------------------------
def _read_state(target: Target) -> dict | None:
    import json

    try:
        return json.loads(target.state_file.read_text())
    except (OSError, ValueError):
        return None


def open_installed(target: Target) -> tuple[Firewall, dict]:
    """The installed firewall on `target` (from its pins and state file)."""
    state = _read_state(target)
    if state is None or not target.pin_dir.is_dir():
        raise PacketlabError(
            f"no firewall is installed on {target}",
            cause=f"nothing pinned at {target.pin_dir}",
            fix="apply one: packetlab firewall apply RULES.yaml --netns NS --dev IF",
        )
    maps, prog_fd = open_maps_pinned(target.pin_dir)
    fw = Firewall(maps, prog_fd, where=str(target), owned_prog_fd=True)
    fw.load_state(state)
    return fw, state


def apply(
    rules: RuleSet, target: Target, *, mode: str = "native", allow_host: bool = False
) -> tuple[Firewall, ApplyResult, bool]:
    """Install the firewall on `target` with `rules`, or swap `rules` in if it is installed.

    Returns (firewall, result, created). Rules are compiled (and so fully
    validated) before anything in the kernel changes.
    """
    check_target(target, allow_host=allow_host)
    compiled = compile_rules(rules)
    _require_bpffs()
    gc()
    if target.pin_dir.is_dir() and _read_state(target) is not None:
        fw, state = open_installed(target)
        try:
            attached = attached_prog_id(target)
            ours = fw.prog_id()
            if attached is None:
                xdp_attach(target, fw.prog_fd, state.get("mode", mode))  # interface was reset: re-attach
            elif attached != ours:
                raise PacketlabError(
                    f"{target} runs XDP program id {attached}, not the installed firewall ({ours})",
                    cause="someone replaced the firewall's program",
                    fix="run `packetlab firewall remove` for this interface, then apply again",
                )
            result = fw.apply(compiled)
            state.update(fw.state_dict(), applied_at=time.time())
            save_json(target.state_file, state)
        except BaseException:
            fw.close()
            raise
        return fw, result, False
    if target.pin_dir.exists():
        _unpin(target)  # leftovers without a state file
    fw = Firewall.load(compiled, where=str(target))
    try:
        target.pin_dir.mkdir(parents=True, exist_ok=True)
        for name, m in fw.maps.items():
            m.pin(str(target.pin_dir / name))
        obj_pin(fw.prog_fd, str(target.pin_dir / "prog"))
        xdp_attach(target, fw.prog_fd, mode)
    except BaseException:
        fw.close()
        _unpin(target)
        raise
    state = {
        "netns": target.netns,
        "dev": target.dev,
        "mode": mode,
        "prog_id": fw.prog_id(),
        "netns_inode": _netns.inode(target.netns) if target.netns else None,
        "installed_at": time.time(),
        "applied_at": time.time(),
        **fw.state_dict(),
    }
    save_json(target.state_file, state)
    assert fw.last_result is not None  # Firewall.load() applied the rules
    return fw, fw.last_result, True


def remove(target: Target) -> list[str]:
    """Detach (only if the attached program is ours), unpin, forget. Returns what was done."""
    done = []
    state = _read_state(target)
    if state is None and not target.pin_dir.exists():
        raise PacketlabError(f"no firewall is installed on {target}", fix="`packetlab firewall status` lists them")
    ours = None
    with contextlib.suppress(OSError, PacketlabError):
        fd = obj_get(str(target.pin_dir / "prog"))
        ours = prog_id(fd)
        os.close(fd)
    attached = attached_prog_id(target) if (target.netns is None or _netns.exists(target.netns)) else None
    if attached is not None and attached == ours:
        xdp_detach(target, (state or {}).get("mode", "native"))
        done.append(f"detached XDP program {ours} from {target}")
    elif attached is not None:
        done.append(f"left XDP program {attached} on {target} alone (not the firewall)")
    done += _unpin(target)
    with contextlib.suppress(FileNotFoundError):
        target.state_file.unlink()
    return done


PIN_NAMES = (*MAP_NAMES, "prog")  # everything the firewall pins, and all that remove() deletes


def _unpin(target: Target) -> list[str]:
    """Delete the firewall's own pins (by name, never every file) and then the directory if empty."""
    done = []
    if target.pin_dir.is_dir():
        for name in PIN_NAMES:
            with contextlib.suppress(FileNotFoundError):
                (target.pin_dir / name).unlink()
        try:
            target.pin_dir.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            done.append(f"left {target.pin_dir} in place: it holds files the firewall did not pin")
        done.append(f"unpinned {target.pin_dir}")
    return done


def installed() -> list[Target]:
    """Every firewall this machine has pinned."""
    out = []
    if STATE_ROOT.is_dir():
        for path in sorted(STATE_ROOT.glob("*.json")):
            state = _read_state_path(path)
            if state and state.get("dev"):
                out.append(Target(state.get("netns"), state["dev"]))
    return out


def _read_state_path(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def gc() -> list[str]:
    """Forget firewalls whose namespace is gone (a lab ended): unpin them."""
    done = []
    for target in installed():
        if target.netns is None:
            continue
        state = _read_state(target) or {}
        inode = _netns.inode(target.netns)
        if inode is None or (state.get("netns_inode") and inode != state["netns_inode"]):
            done += [f"{target}: namespace gone; " + d for d in _unpin(target)]
            with contextlib.suppress(FileNotFoundError):
                target.state_file.unlink()
    return done
