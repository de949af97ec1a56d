"""`make lab` really serves JupyterLab on labs/ (HTTP 200 with the token)."""

from __future__ import annotations

import urllib.error
import urllib.request

from packetlab.paths import REPO_ROOT
from packetlab.testing.make_lab_server import make_lab


def test_make_lab_serves_the_labs_with_a_token(tmp_path):
    with make_lab(tmp_path / "make-lab.log") as server:
        listing = server.api("api/contents")
        names = {item["name"] for item in listing["content"]}
        assert {p.name for p in (REPO_ROOT / "labs").glob("*.ipynb")} <= names
        with urllib.request.urlopen(server.url("lab"), timeout=5) as r:
            assert r.status == 200
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/api/contents", timeout=5)
            raise AssertionError("the server answered without a token")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403
