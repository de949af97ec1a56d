"""The lab guardian: cleans a lab whose owner died without cleaning up.

Each lab starts ``sh -c 'cat >/dev/null; [ -e RECORD ] && exec python -m packetlab.topo.guardian LAB PID GEN'``
with a pipe from the lab process as its stdin. ``cat`` returns when the pipe
closes — that is, when the owner exits *for any reason*, SIGKILL and notebook
kernel restarts included. If the owner's record is still there, the owner did
not clean up, and the guardian tears the recorded resources down. (After a
normal close the record is gone and Python is never started.)

A restarted kernel may already have rebuilt the same lab (same namespace
names) when the guardian runs, so the guardian first takes the lab's lock (a
live lab holds it for its whole life: a new owner makes the guardian give up),
then re-reads the record under the lock and tears down only if it is still the
dead owner's instance (pid and generation).
"""

from __future__ import annotations

import sys

from packetlab.errors import LabRecordCorrupt
from packetlab.topo.cleanup import teardown
from packetlab.topo.lock import LabLock
from packetlab.topo.state import LabRecord, record_path

# The dead owner's lock is free the moment its process is gone; waiting covers a child it
# forked that still holds the inherited descriptor for a moment.
LOCK_WAIT = 10.0


def main(argv: list[str]) -> int:
    lab, pid = argv[0], int(argv[1])
    generation = argv[2] if len(argv) > 2 else None
    lock = LabLock(lab, "guardian")
    if not lock.acquire(timeout=LOCK_WAIT):
        return 0  # a live lab holds the name: a new owner took it over
    try:
        try:
            record = LabRecord.load(record_path(lab))
        except (OSError, LabRecordCorrupt):
            return 0  # the owner cleaned up normally (or the record is unreadable: `packetlab clean` reports it)
        if record.pid != pid or (generation is not None and record.generation != generation):
            return 0  # another instance of the lab wrote this record
        if record.owner_alive():
            return 0
        teardown(record)
        return 0
    finally:
        lock.release()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
