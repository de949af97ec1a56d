"""Where the repository is: the one place that knows packetlab/ sits at its top.

Lessons, labs and C programs are files of the repository, not package data;
the toolkit finds them from here (and child processes put ``REPO_ROOT`` on
``PYTHONPATH`` to import this same packetlab).
"""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BPF_DIR = REPO_ROOT / "bpf"

# A module's name: two digits, an optional letter for modules that share a number (the capstones 11a, 11b,
# 11c), and a slug. Sorting the names as strings gives course order.
MODULE_STEM = re.compile(r"^(\d\d[a-z]?)-([a-z0-9-]+)$")


def module_stems(directory: Path, suffix: str) -> list[Path]:
    """The files ``NN[x]-slug<suffix>`` in `directory`, in course order (``labs``/``.ipynb``, ``modules``/``.md``)."""
    return sorted(p for p in directory.glob(f"[0-9][0-9]*{suffix}") if MODULE_STEM.match(p.name[: -len(suffix)]))


def lab_notebooks() -> list[Path]:
    """Every lab, ``labs/NN[x]-slug.ipynb``, in course order."""
    return module_stems(REPO_ROOT / "labs", ".ipynb")


def lesson_pages() -> list[Path]:
    """Every numbered lesson, ``modules/NN[x]-slug.md``, in course order (99, the quick reference, included)."""
    return module_stems(REPO_ROOT / "modules", ".md")
