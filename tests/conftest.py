"""The test tree: ``unit/`` runs as any user; ``kernel/`` and ``browser/`` need root.

* ``tests/unit/`` — pure logic (parsers, rule compilers, hashing, config validation, the
  docs-site units): no namespaces, no BPF, no root. ``make test-unit`` runs it as you.
* ``tests/kernel/`` — builds namespaces and loads BPF on the real kernel, as root, through the
  ``lab`` fixture (``packetlab.testing.fixtures``, registered here so every test can ask for it).
* ``tests/browser/`` — drives JupyterLab and the docs site in Chromium, as root.

Shared helpers live in the package, not here: ``packetlab.paths.REPO_ROOT``,
``packetlab.testing.child.run_py``, ``packetlab.testing.make_lab_server``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from packetlab.testing import private_progress_dir

pytest_plugins = ["packetlab.testing.fixtures"]
private_progress_dir()  # checks called by tests record into a temporary folder, never the learner's progress

# A run started in the background by a non-interactive shell (`make test &`, nohup, some CI runners)
# inherits SIGINT *ignored*, and so would every child a test stops with Ctrl-C: Python would install
# no KeyboardInterrupt handler there and the child would never end. A caught signal is reset to its
# default on exec, so catching it here gives every child the default back.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

UNIT = Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop at once, with the fix, when a non-root user collected tests that need root.

    Only ``tests/unit/`` runs as a normal user; anything else would fail one test at a time
    on permissions, which hides the one real cause.
    """
    if os.geteuid() == 0 or config.option.collectonly:
        return
    needs_root = [item for item in items if UNIT not in item.path.parents]
    if needs_root:
        pytest.exit(
            f"{len(needs_root)} collected tests (e.g. {needs_root[0].nodeid}) create namespaces or load BPF: "
            "run them as root (make test does), or run only tests/unit as a normal user (make test-unit)",
            2,
        )
