"""Real container runtimes — podman and containerd — whose containers get their
network from our CNI plugin, without touching the host.

Both runtimes have paths compiled in: libcni caches results in /var/lib/cni,
``ctr run --cni`` reads /etc/cni/net.d and /opt/cni/bin, containerd puts its
shims' sockets in /run/containerd, podman creates network namespaces in
/run/netns. So each runtime runs inside a `RuntimeSandbox`: a private mount
namespace, entered together with the node's network namespace, in which /run,
/var/lib and /opt are overlays whose writable layer is a lab temp directory,
and /etc/cni/net.d is the lab's own config directory. The host sees none of
it; when the sandbox's last process exits, its mounts vanish.

Everything the runtimes create is inside the node namespace (they run there,
and CNI plugins act on the namespace they run in): the host's interfaces,
routes and firewall are never involved. Containers get cgroups under
``/packetlab-<lab>-<runtime>`` (runc with the cgroupfs manager, the only
combination that works on this machine's hybrid cgroup layout), removed on
close.

What outlives a runtime process that dies with its lab (SIGKILL) is in the
lab's record too: the cgroup parent (what still runs in it is killed), the
shim (containerd) or conmon (podman) of every detached container, which
re-parent themselves away from the runtime, and the node's working directory.

    podman = Podman(node)
    web = podman.run("web", ["httpd", "-f", "-p", "80", "-h", "/var/www"])
    print(podman.exec("client", ["wget", "-qO-", f"http://{web.ip}/"]))
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packetlab.errors import CommandFailed, MissingRequirement, PacketlabError
from packetlab.tools.cni.image import oci_archive, rootfs_tar
from packetlab.topo import cgroups
from packetlab.topo import servers as launch
from packetlab.topo.netns import CommandResult

if TYPE_CHECKING:
    from packetlab.tools.cni.cluster import Node

IMAGE = "localhost/packetlab/busybox:lab"
CTR_IMAGE = "docker.io/packetlab/busybox:lab"
CGROUP_ROOT = cgroups.CGROUP_ROOT


def _parent_pid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


class RuntimeSandbox:
    """A private mount namespace inside the node's network namespace (see module doc)."""

    def __init__(self, node: Node, name: str, *, opt_cni_bin: bool = False) -> None:
        self.node, self.name = node, name
        self.dir = node.workdir / name
        for sub in ("run-upper", "run-work", "varlib-upper", "varlib-work", "opt-upper", "opt-work", "net.d", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.net_d = self.dir / "net.d"
        ns = node.host.namespace
        links = ""
        if opt_cni_bin:  # ctr run --cni only looks in /opt/cni/bin
            links = "mkdir -p /opt/cni/bin\n" + "".join(
                f'for f in {d}/*; do ln -sf "$f" /opt/cni/bin/; done\n' for d in node.bin_dirs
            )
        d = self.dir
        setup = f"""set -e
mount -t overlay overlay -o lowerdir=/run,upperdir={d}/run-upper,workdir={d}/run-work /run
touch /run/netns/{ns} 2>/dev/null || true
mount --bind /proc/self/ns/net /run/netns/{ns}
mount -t overlay overlay -o lowerdir=/var/lib,upperdir={d}/varlib-upper,workdir={d}/varlib-work /var/lib
mount -t overlay overlay -o lowerdir=/opt,upperdir={d}/opt-upper,workdir={d}/opt-work /opt
{links}mount --bind {self.net_d} /etc/cni/net.d
echo ready
exec sleep infinity
"""
        for tool in ("unshare", "nsenter", "mount"):
            if shutil.which(tool) is None:
                raise MissingRequirement(f"{tool} is missing", fix="sudo apt-get install util-linux mount")
        self.holder = launch.start(
            node.host,
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", setup],
            fix=f"the {name} sandbox needs overlayfs and mount namespaces; run `packetlab doctor`",
        )
        self.pid = self.holder.pid
        self.cgroup_parent = f"/packetlab-{node.lab.name}-{name}"
        node.lab.track_cgroup(self.cgroup_parent.lstrip("/"))

    def argv(self, cmd: Sequence[str]) -> list[str]:
        """Run `cmd` in the sandbox: its mount namespace + the node's network namespace."""
        return ["nsenter", f"--target={self.pid}", "--mount", "--net", "--", *cmd]

    def run(
        self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 120, check: bool = True
    ) -> CommandResult:
        try:
            proc = subprocess.run(
                self.argv(cmd),
                capture_output=True,
                text=True,
                timeout=timeout,
                env=dict(env) if env is not None else None,
            )
        except subprocess.TimeoutExpired:
            raise CommandFailed(
                f"{cmd[0]} did not finish in {timeout} s: {' '.join(cmd)}",
                fix="the machine may be very busy; try again",
            ) from None
        result = CommandResult(list(cmd), proc.returncode, proc.stdout, proc.stderr)
        return result.check() if check else result

    def remove_cgroups(self) -> list[str]:
        """Remove the containers' parent cgroup in every hierarchy (killing what still runs there)."""
        return cgroups.remove(self.cgroup_parent.lstrip("/"))

    def close(self) -> None:
        self.holder.stop()


@dataclass
class Container:
    name: str
    ip: str
    runtime: str
    pid: int | None = None


class _Runtime:
    """Shared by Podman and Containerd: lab-tracked, closed before the lab's namespaces go."""

    kind = "runtime"

    def __init__(self, node: Node, *, network: Mapping | None = None) -> None:
        self.node = node
        self.conflist = dict(network or node.conflist)
        self.attached = True
        self.containers: dict[str, Container] = {}
        node.lab.track(self)

    def _write_network(self, directory: Path) -> None:
        (directory / f"10-{self.conflist['name']}.conflist").write_text(json.dumps(self.conflist, indent=1))

    def detach(self) -> None:  # the Lab's cleanup hook
        if self.attached:
            self.attached = False
            self.close()

    def close(self) -> None:
        raise NotImplementedError


class Podman(_Runtime):
    """Rootful podman with its CNI network backend, all state in a lab temp dir."""

    kind = "podman"

    def __init__(self, node: Node, *, network: Mapping | None = None) -> None:
        if shutil.which("podman") is None:
            raise MissingRequirement("podman is not installed", fix="sudo apt-get install podman")
        super().__init__(node, network=network)
        self.sandbox = RuntimeSandbox(node, "podman")
        try:
            d = self.sandbox.dir
            self._write_network(self.sandbox.net_d)
            (d / "containers.conf").write_text(f"""# written by packetlab.tools.cni.containers: this lab's podman only
[containers]
# no CAP_SYS_RESOURCE in this environment: keep the limits runc sets below the current ones
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
cgroups = "no-conmon"
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
events_logfile_path = "{d}/events.log"
lock_type = "file"
num_locks = 128
[network]
network_backend = "cni"
cni_plugin_dirs = {json.dumps(node.bin_dirs)}
network_config_dir = "{self.sandbox.net_d}"
default_network = "{self.conflist["name"]}"
""")
            (d / "storage.conf").write_text(
                f'[storage]\ndriver = "overlay"\nrunroot = "{d}/runroot"\ngraphroot = "{d}/storage"\n'
            )
            self.env = {
                **os.environ,
                "CONTAINERS_CONF": str(d / "containers.conf"),
                "CONTAINERS_STORAGE_CONF": str(d / "storage.conf"),
                "TMPDIR": str(d / "tmp"),
            }
            rootfs_tar(d / "rootfs.tar")
            self.podman("import", str(d / "rootfs.tar"), IMAGE)
        except BaseException:
            self.close()
            raise

    def podman(self, *args: str, timeout: float = 120, check: bool = True) -> CommandResult:
        d = self.sandbox.dir
        return self.sandbox.run(
            [
                "podman",
                "--root",
                str(d / "storage"),
                "--runroot",
                str(d / "runroot"),
                "--tmpdir",
                str(d / "libpod"),
                "--cgroup-manager",
                "cgroupfs",
                "--runtime",
                "runc",
                *args,
            ],
            env=self.env,
            timeout=timeout,
            check=check,
        )

    def run(self, name: str, command: Sequence[str], *, detach: bool = True) -> Container | CommandResult:
        """`podman run` on our CNI network; detached: returns the Container (with its IP)."""
        common = [
            "run",
            "--name",
            name,
            "--network",
            self.conflist["name"],
            "--cgroup-parent",
            self.sandbox.cgroup_parent,
        ]
        if not detach:
            return self.podman(*common, "--rm", IMAGE, *command, check=False)
        self.podman(*common, "-d", IMAGE, *command)
        pids = self.podman("inspect", name, "--format", "{{.State.ConmonPid}} {{.State.Pid}}").stdout.split()
        for what, pid in zip((f"conmon of podman container {name}", f"podman container {name}"), pids):
            self.node.lab.track_pid(int(pid), what, self.node.host.namespace)
        fmt = '{{(index .NetworkSettings.Networks "' + self.conflist["name"] + '").IPAddress}}'
        ip = self.podman("inspect", name, "--format", fmt).stdout.strip()
        self.containers[name] = Container(name, ip, "podman")
        return self.containers[name]

    def exec(self, name: str, command: Sequence[str], *, check: bool = False) -> CommandResult:
        return self.podman("exec", name, *command, check=check)

    def remove(self, name: str) -> None:
        self.podman("rm", "-f", "-t", "0", name, check=False)
        self.containers.pop(name, None)

    def close(self) -> None:
        self.attached = False
        with contextlib.suppress(Exception):
            if self.sandbox.holder.running:
                self.podman("rm", "-f", "-a", "-t", "0", timeout=60, check=False)
        self.containers.clear()
        self.sandbox.close()
        self.sandbox.remove_cgroups()


class Containerd(_Runtime):
    """containerd with its own config, root, state and socket under a lab temp dir, started
    as a lab process; containers are started with ``ctr run --cni``."""

    kind = "containerd"
    NAMESPACE = "packetlab"

    def __init__(self, node: Node, *, network: Mapping | None = None) -> None:
        for tool in ("containerd", "ctr", "runc"):
            if shutil.which(tool) is None:
                raise MissingRequirement(f"{tool} is not installed", fix="sudo apt-get install containerd runc")
        super().__init__(node, network=network)
        self.sandbox = RuntimeSandbox(node, "containerd", opt_cni_bin=True)
        self.daemon: launch.Server | None = None
        try:
            d = self.sandbox.dir
            self._write_network(self.sandbox.net_d)
            for sub in ("root", "state", "fifo"):
                (d / sub).mkdir(exist_ok=True)
            self.socket = d / "containerd.sock"
            (d / "config.toml").write_text(f"""# written by packetlab.tools.cni.containers: this lab's containerd only
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = "{d}/debug.sock"
""")
            self.daemon = launch.start(
                node.host,
                [
                    "nsenter",
                    f"--target={self.sandbox.pid}",
                    "--mount",
                    "--",
                    "containerd",
                    "--config",
                    str(d / "config.toml"),
                ],
                unix=self.socket,
                timeout=30,
                fix="read containerd's message above",
            )
            rootfs_tar(d / "rootfs.tar")
            oci_archive(d / "rootfs.tar", d / "image.tar", CTR_IMAGE)
            self.ctr("image", "import", str(d / "image.tar"))
        except BaseException:
            self.close()
            raise

    def ctr(self, *args: str, timeout: float = 120, check: bool = True) -> CommandResult:
        return self.sandbox.run(
            ["ctr", "--address", str(self.socket), "--namespace", self.NAMESPACE, *args], timeout=timeout, check=check
        )

    def _run_args(self, name: str) -> list[str]:
        return [
            "run",
            "--cni",
            "--fifo-dir",
            str(self.sandbox.dir / "fifo"),
            "--cgroup",
            f"{self.sandbox.cgroup_parent}/{name}",
        ]

    def run(self, name: str, command: Sequence[str], *, detach: bool = True) -> Container | CommandResult:
        """``ctr run --cni``: ctr itself executes the CNI plugins (go-cni, /etc/cni/net.d)."""
        if not detach:  # foreground: ctr calls CNI DEL itself when the task exits
            return self.ctr(*self._run_args(name), "--rm", CTR_IMAGE, name, *command, check=False)
        self.ctr(*self._run_args(name), "-d", CTR_IMAGE, name, *command)
        pid = self.task_pid(name)
        shim = _parent_pid(pid)  # containerd-shim-runc-v2 re-parents itself away from containerd
        if shim is not None:
            self.node.lab.track_pid(shim, f"containerd shim of {name}", self.node.host.namespace)
        self.node.lab.track_pid(pid, f"containerd container {name}", self.node.host.namespace)
        out = subprocess.run(
            ["nsenter", f"--net=/proc/{pid}/ns/net", "--", "ip", "-j", "-4", "addr", "show", "eth0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        ip = json.loads(out)[0]["addr_info"][0]["local"]
        self.containers[name] = Container(name, ip, "containerd", pid)
        return self.containers[name]

    def task_pid(self, name: str) -> int:
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == name:
                return int(parts[1])
        raise PacketlabError(f"no running task {name!r}", fix="start it with run()")

    def exec(self, name: str, command: Sequence[str], *, check: bool = False) -> CommandResult:
        exec_id = f"x{time.monotonic_ns() % 10**9}"
        return self.ctr(
            "task",
            "exec",
            "--fifo-dir",
            str(self.sandbox.dir / "fifo"),
            "--exec-id",
            exec_id,
            name,
            *command,
            check=check,
        )

    def remove(self, name: str) -> None:
        """Kill and delete a detached container, then CNI DEL its network: a detached
        ``ctr run --cni`` never calls DEL (the kubelet would), so we do, with the
        runtime's own container id and an empty CNI_NETNS (the namespace is gone)."""
        self.ctr("task", "kill", "-s", "SIGKILL", name, check=False)
        for _ in range(50):
            if (
                "STOPPED" in self.ctr("task", "ls", check=False).stdout
                or name not in self.ctr("task", "ls", check=False).stdout
            ):
                break
            time.sleep(0.05)
        self.ctr("task", "rm", "-f", name, check=False)
        self.ctr("container", "rm", name, check=False)
        from packetlab.tools.cni.runtime import CniRuntime

        with contextlib.suppress(Exception):
            CniRuntime(
                self.node.host.namespace,
                self.conflist,
                bin_dirs=self.node.bin_dirs,
                cache_dir=self.sandbox.dir / "cache",
            ).delete(f"{self.NAMESPACE}-{name}", "")
        self.containers.pop(name, None)

    def close(self) -> None:
        self.attached = False
        if self.daemon is not None and self.daemon.running:
            for name in list(self.containers):
                with contextlib.suppress(Exception):
                    self.remove(name)
            with contextlib.suppress(Exception):
                for line in self.ctr("task", "ls", check=False).stdout.splitlines()[1:]:
                    task = line.split()[0]
                    self.ctr("task", "kill", "-s", "SIGKILL", task, check=False)
                    self.ctr("task", "rm", "-f", task, check=False)
                for line in self.ctr("container", "ls", "-q", check=False).stdout.split():
                    self.ctr("container", "rm", line, check=False)
            self.daemon.stop()
        self.containers.clear()
        self.sandbox.close()
        self.sandbox.remove_cgroups()
