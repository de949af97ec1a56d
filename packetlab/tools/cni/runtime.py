"""Drive CNI plugins exactly as a container runtime does (the part of kubelet/
containerd/podman that talks CNI, known as libcni).

For a network *configuration list* (``.conflist``) a runtime:

* on ADD, executes each plugin in order; plugin *n* gets the result of plugin
  *n-1* as ``prevResult`` in its config; the last result is the pod's network,
  and it is cached on disk;
* on DEL, executes the plugins in *reverse* order, each with the cached result
  as ``prevResult``, and forgets the cache;
* on CHECK, executes them in order with the cached result;
* passes runtime values (port mappings, bandwidth limits) only to plugins that
  declare the matching ``capabilities``, inside ``runtimeConfig``;
* runs every plugin from its own network namespace — here the lab's node.

`CniRuntime` does just that, with every plugin executed inside the node
namespace (``nsenter --net=/run/netns/<node>``) so nothing lands in the host.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packetlab.errors import PacketlabError
from packetlab.tools.cni import invoke
from packetlab.tools.cni.spec import CniError, convert_result
from packetlab.topo.netns import NETNS_DIR


@dataclass
class RawAnswer:
    """What one plugin execution printed, unparsed by any runtime logic (for tests)."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None


def load_conflist(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """A conflist (dict or JSON file); a single-plugin .conf is wrapped into a list."""
    if isinstance(source, Mapping):
        conf = copy.deepcopy(dict(source))
    else:
        try:
            conf = json.loads(Path(source).read_text())
        except (OSError, ValueError) as exc:
            raise PacketlabError(
                f"cannot read CNI configuration {source}", cause=str(exc), fix="pass a JSON .conflist (or a dict)"
            ) from None
    if "plugins" not in conf:
        plugin = {k: v for k, v in conf.items() if k not in ("cniVersion", "name")}
        conf = {"cniVersion": conf.get("cniVersion"), "name": conf.get("name"), "plugins": [plugin]}
    for key in ("cniVersion", "name"):
        if not conf.get(key):
            raise PacketlabError(f"the CNI configuration has no {key!r}", fix="add it at the top level of the conflist")
    return conf


class CniRuntime:
    """A minimal CNI runtime for one node namespace."""

    def __init__(
        self,
        node_namespace: str,
        conflist: str | os.PathLike | Mapping[str, Any],
        *,
        bin_dirs: Sequence[str],
        cache_dir: str | os.PathLike,
    ) -> None:
        self.node_namespace = node_namespace
        self.conflist = load_conflist(conflist)
        self.bin_dirs = list(bin_dirs)
        self.cache_dir = Path(cache_dir)
        self.calls: list[tuple[str, str, str]] = []  # (command, plugin type, outcome) for notebooks

    @property
    def name(self) -> str:
        return self.conflist["name"]

    @property
    def version(self) -> str:
        return self.conflist["cniVersion"]

    def _prefix(self) -> list[str]:
        return ["nsenter", f"--net={NETNS_DIR}/{self.node_namespace}", "--"]

    def _env(self, command: str, container_id: str, netns: str, ifname: str, args: Mapping[str, str]) -> dict[str, str]:
        return invoke.plugin_environment(
            command,
            container_id=container_id,
            netns=netns,
            ifname=ifname,
            path=self.bin_dirs,
            args=";".join(f"{k}={v}" for k, v in args.items()),
        )

    def plugin_config(
        self, plugin: Mapping[str, Any], prev: Mapping[str, Any] | None, capability_args: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The stdin of one plugin in the chain (libcni's buildOneConfig)."""
        conf = copy.deepcopy(dict(plugin))
        conf["name"], conf["cniVersion"] = self.name, self.version
        runtime = {
            cap: capability_args[cap]
            for cap, on in (plugin.get("capabilities") or {}).items()
            if on and cap in capability_args
        }
        if runtime:
            conf["runtimeConfig"] = runtime
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    def _exec(
        self,
        command: str,
        plugin: Mapping[str, Any],
        conf: Mapping[str, Any],
        container_id: str,
        netns: str,
        ifname: str,
        args: Mapping[str, str],
    ) -> dict[str, Any] | None:
        executable = invoke.find_plugin(plugin["type"], self.bin_dirs)
        try:
            out = invoke.exec_plugin(
                executable, conf, self._env(command, container_id, netns, ifname, args), argv_prefix=self._prefix()
            )
        except CniError as exc:
            self.calls.append((command, plugin["type"], f"error {exc.code}: {exc.msg}"))
            raise
        self.calls.append((command, plugin["type"], "ok"))
        return out

    # ---- the three operations ------------------------------------------------------------------
    def add(
        self,
        container_id: str,
        netns: str,
        ifname: str = "eth0",
        *,
        args: Mapping[str, str] | None = None,
        capability_args: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """ADD through the chain; on a failure, DEL the plugins that already ran (like libcni)."""
        args, caps = dict(args or {}), dict(capability_args or {})
        prev: dict[str, Any] | None = None
        done: list[Mapping[str, Any]] = []
        for plugin in self.conflist["plugins"]:
            conf = self.plugin_config(plugin, prev, caps)
            try:
                out = self._exec("ADD", plugin, conf, container_id, netns, ifname, args)
            except CniError:
                for ran in reversed(done + [plugin]):
                    try:
                        self._exec("DEL", ran, self.plugin_config(ran, prev, caps), container_id, netns, ifname, args)
                    except CniError:
                        pass
                raise
            done.append(plugin)
            if out is not None:
                prev = convert_result(out, self.version)
        if prev is None:
            raise CniError(7, f"no plugin in {self.name} returned a result")
        self._save(container_id, ifname, prev, caps, args)
        return prev

    def delete(
        self, container_id: str, netns: str, ifname: str = "eth0", *, args: Mapping[str, str] | None = None
    ) -> None:
        """DEL through the chain in reverse order (safe to repeat, also with netns='')."""
        cached = self.cached(container_id, ifname)
        prev = cached["result"] if cached else None
        caps = cached.get("capabilityArgs", {}) if cached else {}
        args = dict(args or (cached.get("args") if cached else {}) or {})
        for plugin in reversed(self.conflist["plugins"]):
            self._exec("DEL", plugin, self.plugin_config(plugin, prev, caps), container_id, netns, ifname, args)
        self._cache_path(container_id, ifname).unlink(missing_ok=True)

    def check(self, container_id: str, netns: str, ifname: str = "eth0") -> None:
        """CHECK through the chain with the cached result (raises CniError on a mismatch)."""
        cached = self.cached(container_id, ifname)
        if cached is None:
            raise CniError(3, f"no cached result for container {container_id}", "ADD it first")
        for plugin in self.conflist["plugins"]:
            self._exec(
                "CHECK",
                plugin,
                self.plugin_config(plugin, cached["result"], cached.get("capabilityArgs", {})),
                container_id,
                netns,
                ifname,
                cached.get("args", {}),
            )

    # ---- direct execution, bypassing the chain (error-path tests, teaching) ---------------------
    def raw(self, plugin_type: str, stdin: bytes | str | Mapping[str, Any], env: Mapping[str, str | None]) -> RawAnswer:
        """Execute one plugin with exactly this stdin and these CNI_* variables (None removes one)."""
        executable = invoke.find_plugin(plugin_type, self.bin_dirs)
        full = dict(os.environ)
        for key, value in env.items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        data = (
            stdin
            if isinstance(stdin, bytes)
            else (stdin.encode() if isinstance(stdin, str) else json.dumps(stdin).encode())
        )
        proc = subprocess.run([*self._prefix(), executable], input=data, env=full, capture_output=True, timeout=60)
        return RawAnswer(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))

    # ---- the result cache (libcni keeps it in /var/lib/cni/results) ------------------------------
    def _cache_path(self, container_id: str, ifname: str) -> Path:
        return self.cache_dir / "results" / f"{self.name}-{container_id}-{ifname}"

    def _save(
        self, container_id: str, ifname: str, result: dict[str, Any], caps: dict[str, Any], args: dict[str, str]
    ) -> None:
        path = self._cache_path(container_id, ifname)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "kind": "cniCacheV1",
                    "containerId": container_id,
                    "ifName": ifname,
                    "networkName": self.name,
                    "result": result,
                    "capabilityArgs": caps,
                    "args": args,
                },
                indent=1,
            )
        )

    def cached(self, container_id: str, ifname: str = "eth0") -> dict[str, Any] | None:
        try:
            return json.loads(self._cache_path(container_id, ifname).read_text())
        except FileNotFoundError:
            return None
