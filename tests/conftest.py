"""Shared fixtures: every test here runs on the real kernel, as root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@pytest.fixture(autouse=True, scope="session")
def _require_root():
    if os.geteuid() != 0:
        pytest.exit("packetlab tests create namespaces and load BPF: run them as root (make test does)", 2)


def run_py(code: str, **kw) -> subprocess.Popen:
    """Start a Python child running `code` (used to test signal and crash cleanup)."""
    return subprocess.Popen(
        [PYTHON, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )
