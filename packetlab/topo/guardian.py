"""The lab guardian: cleans a lab whose owner died without cleaning up.

Each lab starts ``sh -c 'cat >/dev/null; [ -e RECORD ] && exec python -m packetlab.topo.guardian LAB PID'``
with a pipe from the lab process as its stdin. ``cat`` returns when the pipe
closes — that is, when the owner exits *for any reason*, SIGKILL and notebook
kernel restarts included. If the owner's record is still there, the owner did
not clean up, and the guardian tears the recorded resources down. (After a
normal close the record is gone and Python is never started.)
"""

from __future__ import annotations

import sys

from packetlab.topo.cleanup import teardown
from packetlab.topo.state import LabRecord, record_path


def main(argv: list[str]) -> int:
    lab, pid = argv[0], int(argv[1])
    path = record_path(lab)
    try:
        record = LabRecord.load(path)
    except (OSError, ValueError):
        return 0  # the owner cleaned up normally
    if record.pid != pid or record.owner_alive():
        return 0  # a newer owner took the name over
    teardown(record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
