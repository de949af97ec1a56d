"""`Lab`: build a topology of namespaces, bridges and veth links; remove all of it on exit.

Everything a lab creates lives in namespaces called ``<lab>-<node>``; the root
namespace's interfaces, routes and firewall are never touched (veth pairs are
created directly inside their target namespaces). A record on disk lists what
was made, so a lab that dies by SIGKILL is cleaned by its guardian process or
by ``packetlab clean``.

    with Lab("osi") as lab:
        h1, h2 = lab.host("h1"), lab.host("h2")
        sw = lab.switch("sw")
        lab.link(h1, sw, ip="10.0.1.1/24")
        lab.link(h2, sw, ip="10.0.1.2/24")
        h1.ping("10.0.1.2", check=True)
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packetlab.errors import LabBusy, PacketlabError
from packetlab.paths import REPO_ROOT
from packetlab.show.tables import WORDS, format_table
from packetlab.topo import netns
from packetlab.topo.cleanup import is_lab_cgroup, is_lab_workdir, teardown
from packetlab.topo.host import Host, Node, interface_addresses, stop_process
from packetlab.topo.lock import LabLock, holder
from packetlab.topo.names import check_name, namespace_name, port_name
from packetlab.topo.rtnl import iproute
from packetlab.topo.state import LabRecord, ProcessRecord, process_start_time, record_path

_live_labs: weakref.WeakSet[Lab] = weakref.WeakSet()
_held_locks: dict[str, LabLock] = {}  # lab name -> the lock this process holds for it
CLEANER_WAIT = 10.0  # seconds to wait for a guardian or `packetlab clean` that is tearing the name down
_handlers_installed = False


class Switch(Node):
    """A learning bridge living in its own namespace (so the host's bridges are never involved)."""

    def __init__(self, lab: Lab, name: str, namespace: str) -> None:
        super().__init__(lab, name, namespace)
        self.bridge = name

    def next_ifname(self) -> str:  # switch ports are named after their peer instead
        raise NotImplementedError

    def fdb(self) -> str:
        """The bridge's MAC table (which port each MAC address was learned on)."""
        return self.run(["bridge", "fdb", "show", "br", self.bridge, "dynamic"]).stdout


@dataclass
class Link:
    """A veth pair between two nodes."""

    a: Node
    a_ifname: str
    b: Node
    b_ifname: str

    def __repr__(self) -> str:
        return f"<Link {self.a.name}:{self.a_ifname} <-> {self.b.name}:{self.b_ifname}>"


class Lab:
    """A named, self-cleaning network lab on the real kernel."""

    def __init__(self, name: str) -> None:
        self.name = check_name(name, "lab")
        if len(name) > 8:
            raise PacketlabError(
                f"lab name {name!r} is too long",
                cause="lab names prefix every namespace and port name, which must fit 15 characters",
                fix="use at most 8 characters, e.g. Lab('osi')",
            )
        self.nodes: dict[str, Node] = {}
        self.links: list[Link] = []
        self._attachments: list[Any] = []  # anything with detach()
        self._procs: list[subprocess.Popen] = []
        self._record: LabRecord | None = None
        self._guardian: subprocess.Popen | None = None
        self._closing = threading.Lock()

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> Lab:
        """Claim the lab name (its lock, held until close), clean a dead predecessor, write the record,
        arm cleanup."""
        if self._record is not None:
            return self
        _require_root()
        lock = self._claim_name()
        try:
            path = record_path(self.name)
            if path.exists():  # leftovers of a predecessor that died without cleaning (it no longer holds the lock)
                old = LabRecord.load(path)  # a corrupt record raises LabRecordCorrupt: what it made is unknown
                if old.pid != os.getpid() and old.owner_alive():  # (alive, but without the lock: never tear it down)
                    raise _busy(self.name, old.pid)
                teardown(old)
            record = LabRecord(self.name, os.getpid(), process_start_time(os.getpid()), generation=uuid.uuid4().hex)
            record.save()
        except BaseException:
            _held_locks.pop(self.name, None)
            lock.release()
            raise
        self._record = record
        _live_labs.add(self)
        _install_handlers()
        self._start_guardian(record)
        return self

    def _claim_name(self) -> LabLock:
        """Take the lab name's lock; LabBusy (naming the holder's pid) if a live lab holds it."""
        lock = LabLock(self.name, "lab")
        if not lock.try_acquire() and self.name in _held_locks:  # this process: a notebook cell run again
            for lab in list(_live_labs):
                if lab.name == self.name:
                    lab.close()
            stale = _held_locks.pop(self.name, None)  # (a lab object dropped without close)
            if stale is not None:
                stale.release()
            lock.try_acquire()
        if not lock.held:
            who = holder(self.name)
            if who is not None and who[1] != "lab":  # a guardian or `packetlab clean` is removing the old lab
                lock.acquire(timeout=CLEANER_WAIT)
            if not lock.held:
                raise _busy(self.name, who[0] if who else None, who[1] if who else "lab")
        _held_locks[self.name] = lock
        return lock

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> list[str]:
        """Detach XDP, stop processes, delete namespaces — newest first. Idempotent."""
        if self._record is None or self._record.pid != os.getpid():
            return []  # a forked child (pyroute2 forks to create namespaces) never tears down
        if not self._closing.acquire(blocking=False):
            return []
        blocked = _block_signals()
        errors: list[Exception] = []
        try:
            for att in reversed(self._attachments):
                try:
                    att.detach()
                except Exception as exc:  # reported after teardown: a failed detach must not keep the lab
                    errors.append(exc)
            for proc in reversed(self._procs):
                try:
                    stop_process(proc)
                except Exception as exc:
                    errors.append(exc)
            removed = teardown(self._record)
            self._record = None
            _live_labs.discard(self)
            lock = _held_locks.pop(self.name, None)
            if lock is not None:
                lock.release()
            if self._guardian is not None:
                with contextlib.suppress(OSError):
                    if self._guardian.stdin is not None:  # (its pipe)
                        self._guardian.stdin.close()  # guardian sees EOF, finds no record, exits
                self._guardian = None  # (not waited for: it needs no help to exit)
            if errors:
                for other in errors[1:]:
                    errors[0].add_note(f"also failed while closing lab {self.name!r}: {other!r}")
                raise errors[0]
            return removed
        finally:
            self._closing.release()
            _unblock_signals(blocked)

    @property
    def running(self) -> bool:
        return self._record is not None

    def _start_guardian(self, record: LabRecord) -> None:
        if os.environ.get("PACKETLAB_GUARDIAN", "1") == "0":
            return  # tests of `packetlab clean` switch the guardian off
        self._guardian = subprocess.Popen(
            [
                "sh",
                "-c",
                'cat >/dev/null; [ -e "$3" ] && exec "$0" -m packetlab.topo.guardian "$1" "$2" "$4"',
                sys.executable,
                self.name,
                str(os.getpid()),
                str(record.path),
                record.generation,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd="/",
            env={**os.environ, "PYTHONPATH": _package_parent()},
        )

    def _need_running(self) -> LabRecord:
        if self._record is None:
            raise PacketlabError(
                f"lab {self.name!r} is not running",
                cause="resources can only be added between start() and close()",
                fix=f"use `with Lab({self.name!r}) as lab:` or call lab.start() first",
            )
        return self._record

    def _track_process(self, proc: subprocess.Popen, rec: ProcessRecord) -> None:
        record = self._need_running()
        self._procs.append(proc)
        record.processes.append(rec)
        record.save()

    def track(self, resource: Any) -> Any:
        """Register anything with a ``detach()`` method (an XDP/tc attachment, a firewall,
        a CNI node...): the lab calls it on close, newest first, before deleting namespaces.
        Returns `resource`, so ``fw = lab.track(Firewall(...))`` reads naturally."""
        self._need_running()
        self._attachments.append(resource)
        return resource

    _track_attachment = track  # the name the first modules used

    def track_workdir(self, path: str | os.PathLike[str]) -> None:
        """Record a working directory (``tempfile.mkdtemp(prefix=f"packetlab-{lab}-...")``) so a lab that
        dies is cleaned of it too (the guardian and `packetlab clean` remove it after the namespaces)."""
        record = self._need_running()
        path = os.path.abspath(path)
        if not is_lab_workdir(self.name, path):
            raise PacketlabError(
                f"working directory {path} is outside this lab's names",
                cause="teardown removes recorded directories, so only the lab's own temp directories are accepted",
                fix=f"create it with tempfile.mkdtemp(prefix='packetlab-{self.name}-...')",
            )
        if path not in record.workdirs:
            record.workdirs.append(path)
            record.save()

    def track_cgroup(self, name: str) -> None:
        """Record a top-level cgroup (``packetlab-<lab>-...``, in every hierarchy) before a runtime
        creates it: teardown kills what still runs in it and removes it."""
        record = self._need_running()
        if not is_lab_cgroup(self.name, name):
            raise PacketlabError(
                f"cgroup {name!r} is not this lab's",
                cause="teardown kills the processes of recorded cgroups, so only the lab's own names are accepted",
                fix=f"name it packetlab-{self.name}-<what>, one level under the hierarchy root",
            )
        if name not in record.cgroups:
            record.cgroups.append(name)
            record.save()

    def track_pid(self, pid: int, what: str, namespace: str = "") -> None:
        """Record a process this lab caused but did not start itself (a containerd shim, conmon,
        a container's init): it outlives its starter, so teardown must know it by pid and start time."""
        record = self._need_running()
        start = process_start_time(pid)
        if start is None:
            return  # already gone
        record.processes.append(ProcessRecord(pid, start, namespace, [what]))
        record.save()

    def track_pin(self, path: str) -> None:
        """Record a bpffs pin before creating it, so close(), the guardian and
        `packetlab clean` unlink it. Only paths under /sys/fs/bpf/packetlab/<lab>/ are accepted."""
        record = self._need_running()
        if not os.path.normpath(path).startswith(f"/sys/fs/bpf/packetlab/{self.name}/"):
            raise PacketlabError(
                f"pin {path} is outside this lab's folder", fix=f"pin under /sys/fs/bpf/packetlab/{self.name}/"
            )
        if path not in record.pins:
            record.pins.append(path)
            record.save()

    # ---- building ----------------------------------------------------------------------
    def _namespace(self, node: str) -> str:
        record = self._need_running()
        check_name(node, "node")
        if node in self.nodes:
            raise PacketlabError(
                f"lab {self.name!r} already has a node called {node!r}",
                fix="give each host, router and switch its own name",
            )
        ns = namespace_name(self.name, node)
        if netns.exists(ns):
            raise LabBusy(
                f"namespace {ns} already exists but is not recorded by this lab",
                cause="something else created it (or a record was deleted by hand)",
                fix=f"inspect it with `ip netns list`; remove it yourself with `ip netns del {ns}` if it is yours",
            )
        record.namespaces.append(ns)
        record.save()  # recorded before it exists: a crash cannot orphan it
        netns.create(ns)
        with iproute(netns=ns) as ipr:  # loopback up; no duplicate-address wait for IPv6
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        for key in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"):
            Node(self, node, ns).sysctl(key, 0)
        return ns

    def host(self, name: str) -> Host:
        """Add a host: a fresh network namespace with loopback up."""
        host = Host(self, name, self._namespace(name))
        self.nodes[name] = host
        return host

    def router(self, name: str) -> Host:
        """Add a host with IPv4 and IPv6 forwarding enabled (in its own namespace only)."""
        router = self.host(name)
        router.enable_forwarding()
        return router

    def switch(self, name: str) -> Switch:
        """Add a learning bridge (its own namespace holding bridge device `name`)."""
        sw = Switch(self, name, self._namespace(name))
        with iproute(netns=sw.namespace) as ipr:
            ipr.link("add", ifname=name, kind="bridge")
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
        self.nodes[name] = sw
        return sw

    bridge = switch

    def link(
        self,
        a: Node,
        b: Node,
        *,
        ip: str | Sequence[str] | None = None,
        peer_ip: str | Sequence[str] | None = None,
        mtu: int | None = None,
        name: str | None = None,
        peer_name: str | None = None,
    ) -> Link:
        """Connect `a` and `b` with a veth pair; address a's end with `ip`, b's with `peer_ip`.

        A host's interfaces are eth0, eth1, ...; a switch's ports are named after the
        peer (``h1-eth0``). If any step fails the pair is deleted before re-raising.
        """
        record = self._need_running()
        a_addrs, b_addrs = interface_addresses(ip), interface_addresses(peer_ip)
        a_if = check_name(name) if name else (a.next_ifname() if not isinstance(a, Switch) else None)
        b_if = check_name(peer_name) if peer_name else (b.next_ifname() if not isinstance(b, Switch) else None)
        if isinstance(a, Switch) and isinstance(b, Switch):
            a_if, b_if = a_if or f"{b.name}-p", b_if or f"{a.name}-p"
        if a_if is None:  # a is a switch, b is not (two switches were named above): a's port after b's end
            assert b_if is not None
            a_if = port_name(b.name, b_if)
        if b_if is None:  # b is a switch
            b_if = port_name(a.name, a_if)
        if isinstance(a, Switch) and a_addrs or isinstance(b, Switch) and b_addrs:
            raise PacketlabError(
                "a switch port cannot carry an IP address",
                cause="switch ports are bridge members (layer 2)",
                fix="put the address on the host's end: lab.link(h1, sw, ip='10.0.1.1/24')",
            )
        with iproute(netns=a.namespace) as ipr:
            ipr.link("add", ifname=a_if, kind="veth", peer={"ifname": b_if, "net_ns_fd": b.namespace})
        record.links.append(f"{a.namespace}/{a_if}")
        record.save()
        try:
            for node, ifname, addrs in ((a, a_if, a_addrs), (b, b_if, b_addrs)):
                _configure_end(node, ifname, addrs, mtu)
        except BaseException:
            with contextlib.suppress(Exception), iproute(netns=a.namespace) as ipr:
                ipr.link("del", ifname=a_if)  # roll back this half-built link
            record.links.remove(f"{a.namespace}/{a_if}")
            record.save()
            raise
        for node, ifname in ((a, a_if), (b, b_if)):
            _wait_operational(node, ifname)
        link = Link(a, a_if, b, b_if)
        self.links.append(link)
        return link

    def describe(self) -> str:
        """A text table of nodes, interfaces and addresses (for notebooks)."""
        rows = []
        for node in self.nodes.values():
            out = node.run(["ip", "-br", "addr"]).stdout.strip().splitlines()
            for line in out:
                if not line.startswith("lo "):
                    ifname, state, addrs = (line.split(None, 2) + ["", ""])[:3]
                    rows.append((node.name, node.namespace, ifname, state, " ".join(addrs.split())))
        return format_table(["node", "namespace", "interface", "state", "addresses"], rows, align=WORDS)

    def __repr__(self) -> str:
        state = "running" if self.running else "closed"
        return f"<Lab {self.name} ({state}): {', '.join(self.nodes) or 'empty'}>"


def _configure_end(node: Node, ifname: str, addrs: list, mtu: int | None) -> None:
    with iproute(netns=node.namespace) as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        if mtu:
            ipr.link("set", index=idx, mtu=mtu)
        if isinstance(node, Switch):
            ipr.link("set", index=idx, master=ipr.link_lookup(ifname=node.bridge)[0])
        for addr in addrs:
            extra = {"flags": 0x02} if addr.version == 6 else {}  # IFA_F_NODAD
            ipr.addr("add", index=idx, address=str(addr.ip), prefixlen=addr.network.prefixlen, **extra)
        ipr.link("set", index=idx, state="up")


def _wait_operational(node: Node, ifname: str, timeout: float = 2.0) -> None:
    """Poll until the kernel reports `ifname` operationally UP.

    A veth's operstate (and its qdisc) is switched by the kernel's linkwatch
    work, which a loaded machine can run late; frames sent before then are
    dropped. Usually the first poll already sees UP.
    """
    deadline = time.monotonic() + timeout
    with iproute(netns=node.namespace) as ipr:
        while True:
            link = ipr.get_links(ifname=ifname)[0]
            if link.get_attr("IFLA_OPERSTATE") == "UP" or time.monotonic() > deadline:
                return
            time.sleep(0.01)


def _busy(name: str, pid: int | None, role: str = "lab") -> LabBusy:
    owner = f"process {pid}" if pid is not None else "another process"
    if role != "lab":
        return LabBusy(
            f"lab {name!r} is being cleaned up by {owner} (the {role})",
            cause="a crashed predecessor's resources are still being removed",
            fix="try again in a few seconds",
        )
    return LabBusy(
        f"lab {name!r} is already running in {owner}",
        cause="two labs with one name would share namespaces",
        fix=f"close it there (lab.close()), use another name, or `packetlab clean --force --lab {name}`",
    )


def _require_root() -> None:
    if os.geteuid() != 0:
        from packetlab.errors import MissingRequirement

        raise MissingRequirement(
            "packetlab labs must run as root",
            cause="creating network namespaces and loading BPF needs CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_BPF",
            fix="run inside the lab VM (vagrant up) or with sudo: `sudo make lab`",
        )


def _package_parent() -> str:
    return str(REPO_ROOT)


def close_all() -> None:
    """Close every lab this process still has open (atexit and signal path), and tear down the
    record of any lab object that was dropped without close() (its name's lock is still ours)."""
    for lab in list(_live_labs):
        lab.close()
    for name, lock in list(_held_locks.items()):
        with contextlib.suppress(OSError, PacketlabError):
            record = LabRecord.load(record_path(name))
            if record.pid == os.getpid():
                teardown(record)
        _held_locks.pop(name, None)
        lock.release()


def _on_signal(signum: int, frame: Any) -> None:
    close_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    """atexit + SIGTERM/SIGHUP: a lab is removed however its process ends (SIGINT raises
    KeyboardInterrupt, which `with` handles; SIGKILL is the guardian's job)."""
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(close_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


def _block_signals() -> set | None:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def _unblock_signals(previous: set | None) -> None:
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
