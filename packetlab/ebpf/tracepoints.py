"""Tracepoint programs with bcc: load, attach, read maps and stream ring-buffer events.

Why tracepoints first: stock kernels have kprobes, but a kernel may be built
without them (CONFIG_KPROBES / CONFIG_KPROBE_EVENTS off, as on the course's CI
machine), and a kprobe's function can change between releases. Tracepoints are
the kernel's stable, documented hook points
(``/sys/kernel/tracing/events/<category>/<name>``), they exist in every
build with tracing enabled, and their fields do not change between kernel
versions the way function arguments do. (fentry/fexit, the BTF-based way to hook
functions, are shown on the CO-RE path.)

    with TracepointProgram("bpf/06-tp-xmit.c", lab=lab) as tp:   # bcc attaches each TRACEPOINT_PROBE
        tp.set("target_tgid", 0, os.getpid())
        ...                                                      # make something happen
        events = tp.events("xmit_events", expect=5, timeout=2)   # poll the ring buffer, never forever
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packetlab.ebpf.loader import (
    BPF_DIR,
    _compile_error,
    _import_bcc,
    _verifier_error,
    capture_stderr,
    resolve_source,
    table_to_dict,
    to_python,
)
from packetlab.errors import MissingRequirement, PacketlabError

if TYPE_CHECKING:
    from packetlab.topo.lab import Lab

TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


def tracefs() -> Path:
    """The tracefs mount (``/sys/kernel/tracing``); mounted here only if it is missing."""
    for path in TRACEFS_CANDIDATES:
        if (path / "events").is_dir():
            return path
    target = TRACEFS_CANDIDATES[0]
    proc = subprocess.run(["mount", "-t", "tracefs", "nodev", str(target)], capture_output=True, text=True)
    if proc.returncode != 0 or not (target / "events").is_dir():
        raise MissingRequirement(
            "tracefs is not mounted and could not be mounted",
            cause=proc.stderr.strip() or "no events/ folder under /sys/kernel/tracing",
            fix="run `sudo vagrant/provision.sh` (it mounts tracefs), or: mount -t tracefs nodev /sys/kernel/tracing",
        )
    return target


def kprobes_available() -> bool:
    """True if this kernel can place kprobes (the perf 'kprobe' PMU or kprobe_events exist)."""
    return Path("/sys/bus/event_source/devices/kprobe").exists() or (tracefs() / "kprobe_events").exists()


def trace_buffer_lines(marker: str) -> list[str]:
    """The lines of the kernel's trace buffer (where bpf_trace_printk writes) that contain `marker`.

    Reads ``trace``, the buffer's non-consuming view, rather than ``trace_pipe``: reading
    the pipe blocks and *removes* what it reads, so a lab would take lines another tool (or
    your own ``cat trace_pipe``) was waiting for. Both show the same lines.
    """
    with open(tracefs() / "trace", errors="replace") as f:
        return [line.rstrip("\n") for line in f if marker in line]


def list_tracepoints(category: str) -> list[str]:
    """Names of the tracepoints in one category (``net``, ``skb``, ``syscalls``, ...)."""
    folder = tracefs() / "events" / category
    if not folder.is_dir():
        raise PacketlabError(
            f"no tracepoint category {category!r}", fix=f"see the categories with: ls {tracefs() / 'events'}"
        )
    return sorted(p.name for p in folder.iterdir() if (p / "format").exists())


def tracepoint_fields(category: str, name: str) -> list[str]:
    """The fields a tracepoint hands to a program, as declared in its format file."""
    path = tracefs() / "events" / category / name / "format"
    if not path.exists():
        raise PacketlabError(
            f"no tracepoint {category}:{name}",
            fix=f"list them with packetlab.ebpf.tracepoints.list_tracepoints({category!r})",
        )
    fields = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("field:") and "common_" not in line:
            fields.append(line.split(";")[0].removeprefix("field:"))
    return fields


class TracepointProgram:
    """A bcc source whose TRACEPOINT_PROBE functions are compiled, loaded and attached.

    Attachments belong to this process (perf event file descriptors): they go
    away with ``close()``, with the lab, or when the process exits.
    """

    def __init__(self, source: str | os.PathLike, *, cflags: Sequence[str] = (), lab: Lab | None = None) -> None:
        bcc = _import_bcc()
        tracefs()
        self.path = resolve_source(source)
        self.source = self.path.read_text()
        self._ring_events: dict[str, list[dict]] = {}
        include = [f"-I{BPF_DIR}", f"-I{self.path.parent}"]
        t0 = time.perf_counter()
        failure: Exception | None
        with capture_stderr() as err:
            try:
                self.bpf = bcc.BPF(src_file=str(self.path).encode(), cflags=include + list(cflags))
            except Exception as exc:  # bcc raises bare Exception for compile, load and attach
                failure = exc
            else:
                failure = None
        self.load_seconds = time.perf_counter() - t0
        if failure is not None:
            text = str(failure)
            if "Failed to load BPF program" in text:
                m = re.search(r"program b?'?(\w+)", text)
                raise _verifier_error(self.path, m.group(1) if m else "?", err[0], self.source) from failure
            if "Failed to attach" in text:
                raise PacketlabError(
                    f"cannot attach {self.path.name}",
                    cause=text,
                    fix="does the tracepoint exist on this kernel? "
                    "see packetlab.ebpf.tracepoints.list_tracepoints('<category>')",
                ) from failure
            raise _compile_error(self.path, err[0]) from failure
        if lab is not None:
            lab.track(self)  # lab.close() calls detach()

    @property
    def attached(self) -> list[str]:
        """The tracepoints this program is attached to, as ``category:name``."""
        names = []
        for key in getattr(self.bpf, "tracepoint_fds", {}):
            names.append(key.decode() if isinstance(key, bytes) else str(key))
        return sorted(names)

    def attach_kprobe(self, function: str, fn_name: str) -> None:
        """Attach the program `fn_name` of this source to the entry of kernel function `function`.

        Stock kernels have kprobes; a kernel built without them (see
        `kprobes_available`) refuses, and the error says so instead of bcc's
        "not traceable".
        """
        if not kprobes_available():
            raise MissingRequirement(
                f"cannot attach {fn_name} to {function}: this kernel has no kprobes",
                cause="built without CONFIG_KPROBES / CONFIG_KPROBE_EVENTS (stock distribution kernels have them)",
                fix="use a tracepoint or tp_btf instead, or boot a distribution kernel",
            )
        with capture_stderr():
            try:
                self.bpf.attach_kprobe(event=function.encode(), fn_name=fn_name.encode())
            except Exception as exc:  # bcc raises bare Exception
                raise PacketlabError(
                    f"cannot attach a kprobe to {function}",
                    cause=str(exc),
                    fix=f"is {function} in /proc/kallsyms and not inlined on this kernel? "
                    "grep it in /sys/kernel/tracing/available_filter_functions",
                ) from exc

    def __getitem__(self, map_name: str) -> Any:
        try:
            return self.bpf[map_name.encode()]
        except KeyError:
            raise PacketlabError(f"no map named {map_name!r} in {self.path.name}") from None

    def table(self, map_name: str) -> dict:
        """The map's contents as plain Python values (per-CPU values summed)."""
        return table_to_dict(self[map_name])

    def set(self, map_name: str, key: int, value: int) -> None:
        """Write one integer entry of a map (e.g. the PID to watch)."""
        table = self[map_name]
        table[table.Key(key)] = table.Leaf(value)

    def events(self, map_name: str, *, expect: int | None = None, timeout: float = 1.0) -> list[dict]:
        """Events from a BPF_RINGBUF_OUTPUT map, as dicts.

        Polls for at most `timeout` seconds (returning early once `expect`
        events have arrived) — never blocks forever. Each call returns the
        events that arrived since the previous call.
        """
        if map_name not in self._ring_events:
            table = self[map_name]
            store: list[dict] = []

            def collect(ctx: Any, data: Any, size: int, _table: Any = table, _store: list = store) -> int:
                _store.append(_event_to_dict(_table.event(data)))
                return 0

            table.open_ring_buffer(collect)
            self._ring_events[map_name] = store
            self._callbacks = getattr(self, "_callbacks", []) + [collect]  # keep the ctypes callback alive
        store = self._ring_events[map_name]
        deadline = time.monotonic() + timeout
        while True:
            self.bpf.ring_buffer_consume()
            if expect is not None and len(store) >= expect:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.bpf.ring_buffer_poll(max(1, int(min(remaining, 0.1) * 1000)))
        out = list(store)
        store.clear()
        return out

    def close(self) -> None:
        """Detach every tracepoint and free the maps (idempotent)."""
        bpf = self.__dict__.pop("bpf", None)
        if bpf is not None:
            with contextlib.suppress(Exception):
                bpf.cleanup()

    detach = close

    def __enter__(self) -> TracepointProgram:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", ".join(self.attached) if "bpf" in self.__dict__ else "closed"
        return f"<TracepointProgram {self.path.name}: {state}>"


def _event_to_dict(event: Any) -> dict:
    out = {}
    for name, *_ in event._fields_:
        value = getattr(event, name)
        if isinstance(value, bytes):
            value = value.split(b"\0", 1)[0].decode(errors="replace")
        else:
            value = to_python(value)
        out[name] = value
    return out
