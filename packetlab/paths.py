"""Where the repository is: the one place that knows packetlab/ sits at its top.

Lessons, labs and C programs are files of the repository, not package data;
the toolkit finds them from here (and child processes put ``REPO_ROOT`` on
``PYTHONPATH`` to import this same packetlab).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BPF_DIR = REPO_ROOT / "bpf"
