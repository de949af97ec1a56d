"""Test support: the host guard, the Run-All runner, pytest fixtures."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile


def private_progress_dir() -> str:
    """Send the learner-progress file (`packetlab.course.progress`) to a temporary folder for this run.

    Tests and notebook runs call graded checks; their outcomes must not land in the
    learner's (or root's) own progress. Kept if ``PACKETLAB_DATA_DIR`` is already set;
    otherwise a fresh folder, removed when the process exits. Kernels started by the run
    (nbval, Run All) inherit it.
    """
    current = os.environ.get("PACKETLAB_DATA_DIR")
    if current:
        return current
    folder = tempfile.mkdtemp(prefix="packetlab-progress-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["PACKETLAB_DATA_DIR"] = folder
    return folder
