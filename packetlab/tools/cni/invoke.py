"""Execute a CNI plugin the way the spec says: find it in CNI_PATH, pass the
CNI_* variables and the config on stdin, read a result or an error from stdout.

Used in two places: our plugin delegating to an IPAM plugin (host-local, or
ours), and the runtime driver (`packetlab.tools.cni.runtime`) that plays kubelet/
containerd in the lab. Both must search *every* entry of the colon-separated
CNI_PATH, in order.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from packetlab.tools.cni.spec import DECODING_FAILURE, IO_FAILURE, PLUGIN_NOT_FOUND, CniError


def find_plugin(name: str, path: Sequence[str]) -> str:
    """The first executable called `name` in the CNI_PATH entries, else error 103."""
    if not name or "/" in name or name in (".", ".."):
        raise CniError(
            PLUGIN_NOT_FOUND, f"invalid plugin type {name!r}", "a plugin type is a file name, looked up in CNI_PATH"
        )
    for directory in path:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(
        PLUGIN_NOT_FOUND,
        f"failed to find plugin {name!r} in path {list(path)}",
        "install the plugin into one of the CNI_PATH directories",
    )


def plugin_environment(
    command: str,
    *,
    container_id: str,
    netns: str,
    ifname: str,
    path: Sequence[str],
    args: str = "",
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for one plugin call (the runtime's own variables plus CNI_*)."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": ":".join(path),
            "CNI_ARGS": args,
        }
    )
    return env


def exec_plugin(
    executable: str,
    config: Mapping[str, Any] | bytes,
    env: Mapping[str, str],
    *,
    argv_prefix: Sequence[str] = (),
    timeout: float = 60,
) -> dict[str, Any] | None:
    """Run one plugin; return its parsed result (None for an empty DEL/CHECK answer).

    A non-zero exit becomes a CniError carrying the plugin's own code and message.
    `argv_prefix` lets the caller run the plugin inside a namespace (nsenter ...).
    """
    stdin = config if isinstance(config, bytes) else json.dumps(config).encode()
    try:
        proc = subprocess.run(
            [*argv_prefix, executable], input=stdin, env=dict(env), capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise CniError(IO_FAILURE, f"plugin {os.path.basename(executable)} did not answer in {timeout} s") from None
    except OSError as exc:
        raise CniError(IO_FAILURE, f"cannot execute {executable}", str(exc)) from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        try:
            err = json.loads(out)
            raise CniError(
                int(err.get("code", IO_FAILURE)),
                str(err.get("msg", "")),
                str(err.get("details", "") or proc.stderr.decode(errors="replace").strip()),
            )
        except (ValueError, AttributeError):
            raise CniError(
                IO_FAILURE,
                f"plugin {os.path.basename(executable)} failed with exit code {proc.returncode} and no error object",
                (out + " " + proc.stderr.decode(errors="replace")).strip()[-500:],
            ) from None
    if not out:
        return None
    try:
        return json.loads(out)
    except ValueError:
        raise CniError(
            DECODING_FAILURE, f"plugin {os.path.basename(executable)} printed something that is not JSON", out[-500:]
        ) from None
