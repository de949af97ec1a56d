"""Start a Python child process in the repository, for tests of signal and crash cleanup.

A test that kills a lab's owner (SIGKILL, SIGTERM, a crashing kernel) needs that owner to be
another process; this starts one running a snippet, with the same interpreter and this
checkout on its path (cwd is the repository root).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from packetlab.paths import REPO_ROOT

PYTHON = sys.executable


def run_py(code: str, **kw: Any) -> subprocess.Popen[str]:
    """Start ``python -c code`` in the repository root with text pipes for stdout and stderr."""
    return subprocess.Popen(
        [PYTHON, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )
