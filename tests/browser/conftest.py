"""Browser fixtures: a real, headless Chromium driven by Playwright (sync API).

The browser is Debian's own ``chromium`` package (installed by
``vagrant/provision.sh --with-test-tools``), not a Playwright browser download:
CI reaches no download host, and the distro build is what a learner has anyway.

Fixtures (load order: ``browser`` -> ``page``):

- ``browser`` (session): one Chromium for the whole run, with a fresh empty
  profile, background networking switched off and no host name resolving
  (except localhost/127.0.0.1), so it talks to nothing but the pages a test opens at
  127.0.0.1 (the test machine has no internet; without these flags Chromium
  floods it with refused connections and DNS queries for Google services).
- ``page`` (function): a new page in its own browser context (no cookies or
  storage shared between tests), closed afterwards.

``screenshot_path(name)`` gives a file under ``build/screenshots/`` (ignored by git).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from packetlab.testing.make_lab_server import LabServer, make_lab
from packetlab.topo.servers import startup_scale

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "screenshots"
CHROMIUM = "/usr/bin/chromium"

# Headless Chromium that reaches nothing but 127.0.0.1/localhost.
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root; the sandbox refuses root
    "--disable-gpu",
    "--disable-background-networking",  # no safe-browsing, variations, or update pings
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Even so, Chromium looks up accounts.google.com and update.googleapis.com: no host name
    # resolves here (no DNS query leaves the machine) except localhost and 127.0.0.1 (the
    # rule would catch even that literal). A page that tries an outside host still shows
    # the request (page.on("request")); it fails with ERR_NAME_NOT_RESOLVED.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


def screenshot_path(name: str) -> Path:
    """Path for a screenshot called ``name`` (without extension) under build/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Session-scoped headless Chromium (Debian's /usr/bin/chromium), fresh empty profile.

    Yields a Playwright ``Browser``. Fails with the fix when chromium or
    playwright is missing (both come from ``provision.sh --with-test-tools``).
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "playwright is not installed in .venv: run `sudo vagrant/provision.sh --with-test-tools` "
            "(it is pinned in pyproject.toml's `test` extra)"
        )
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `sudo vagrant/provision.sh --with-test-tools` "
            "(it installs Debian's chromium package)"
        )
    with sync_playwright() as pw:
        # launch() (unlike launch_persistent_context) always starts from a fresh, empty
        # temporary profile that Playwright deletes on close.
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in its own browser context (1280x900), closed after the test.

    Playwright's 30 s limit per action grows with PACKETLAB_STARTUP_SCALE (an emulated CPU)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000 * startup_scale())
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture(scope="session")
def lab_server() -> Iterator[LabServer]:
    """``make lab`` on a free port, one server for every browser test that needs JupyterLab; log in build/."""
    with make_lab(REPO / "build" / "jupyterlab-server.log") as server:
        yield server
