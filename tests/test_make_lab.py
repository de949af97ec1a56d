"""`make lab` really serves JupyterLab on labs/ (HTTP 200 with the token)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

from conftest import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_the_labs_with_a_token():
    port, token = _free_port(), "packetlab-test-token"
    proc = subprocess.Popen(["make", "-s", "lab", f"JUPYTER_PORT={port}"], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "JUPYTER_TOKEN": token})
    try:
        deadline, listing = time.monotonic() + 120, None
        while time.monotonic() < deadline and listing is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=2) as r:
                    assert r.status == 200
                    listing = json.load(r)
            except OSError:
                time.sleep(0.5)
        assert listing is not None, "JupyterLab did not answer within 120 s"
        names = {item["name"] for item in listing["content"]}
        assert {p.name for p in (REPO / "labs").glob("*.ipynb")} <= names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5) as r:
            assert r.status == 200
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5)
            raise AssertionError("the server answered without a token")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
