"""The on-disk record of what a running lab created.

A lab writes ``/run/packetlab/labs/<lab>.json`` before it creates anything and
updates it after every step, so that if its process dies without cleaning up
(SIGKILL, a crashed notebook kernel) ``packetlab clean`` or the lab's guardian
can remove exactly what it made — by recorded name, never by pattern.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from packetlab.errors import LabRecordCorrupt

STATE_DIR = Path(os.environ.get("PACKETLAB_STATE_DIR", "/run/packetlab/labs"))


def process_start_time(pid: int) -> int | None:
    """Kernel start time of `pid` (clock ticks since boot), or None if it is gone.

    Recorded with every pid so that a recycled pid is never mistaken for ours.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_alive(pid: int, start_time: int | None) -> bool:
    """True if `pid` still runs and is the same process that was recorded.

    A zombie (exited, not yet reaped by its parent — a notebook kernel just after
    it died, before the Jupyter server waits for it) is not alive: its lab's
    guardian must clean up now, not conclude the owner still runs.
    """
    now = process_start_time(pid)
    if now is None or (start_time is not None and now != start_time):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@dataclass
class ProcessRecord:
    """A background process a lab started inside one of its namespaces."""

    pid: int
    start_time: int | None
    namespace: str
    argv: list[str]


@dataclass
class LabRecord:
    """Everything one lab instance created, in creation order."""

    lab: str
    pid: int
    start_time: int | None
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # "ns/ifname" for reporting
    processes: list[ProcessRecord] = field(default_factory=list)
    pins: list[str] = field(default_factory=list)  # bpffs paths
    generation: str = ""  # unique per start: a guardian tears down only the instance it was started for
    workdirs: list[str] = field(default_factory=list)  # temp directories (node workdirs, runtime state)
    cgroups: list[str] = field(default_factory=list)  # cgroup names (packetlab-<lab>-...) in every hierarchy

    @property
    def path(self) -> Path:
        return record_path(self.lab)

    def owner_alive(self) -> bool:
        return is_alive(self.pid, self.start_time)

    def save(self) -> None:
        """Write atomically: a reader never sees half a record."""
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, self.path)

    def delete(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    @classmethod
    def load(cls, path: Path) -> LabRecord:
        """Read a record; a file that is not one raises `LabRecordCorrupt` (never a guess at its content)."""
        text = path.read_text()  # OSError (FileNotFoundError: no record) is the caller's to handle
        try:
            data = json.loads(text)
            data["processes"] = [ProcessRecord(**p) for p in data.get("processes", [])]
            record = cls(**data)
            if record.lab != path.stem or not isinstance(record.pid, int):
                raise ValueError(f"it names lab {record.lab!r} with pid {record.pid!r}")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            lab = path.stem
            err = LabRecordCorrupt(
                f"the record of lab {lab!r} ({path}) is corrupt",
                cause=f"it is not a lab record ({type(exc).__name__}: {exc}); what that lab made is unknown",
                fix=f"`packetlab clean --lab {lab}` removes the record (and lists namespaces named {lab}-* to check)",
            )
            err.path = path
            raise err from None
        return record


def record_path(lab: str) -> Path:
    """Where the record of lab `lab` lives."""
    return STATE_DIR / f"{lab}.json"


def all_records() -> list[LabRecord]:
    """Every lab record on disk (corrupt ones are skipped, never guessed at: see `corrupt_records`)."""
    return scan_records()[0]


def corrupt_records() -> list[LabRecordCorrupt]:
    """The errors of the record files that cannot be read as records."""
    return scan_records()[1]


def scan_records() -> tuple[list[LabRecord], list[LabRecordCorrupt]]:
    records, corrupt = [], []
    for path in sorted(STATE_DIR.glob("*.json")):
        try:
            records.append(LabRecord.load(path))
        except LabRecordCorrupt as exc:
            corrupt.append(exc)
        except OSError:
            continue  # removed while we looked
    return records, corrupt
