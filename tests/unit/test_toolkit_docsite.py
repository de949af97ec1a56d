"""The docs build's own pieces, without a browser: vendored assets, the offline check, lab pages.

The whole site in a real browser is tests/browser/test_docs_site.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packetlab.docsite import labs as docs_labs
from packetlab.docsite import offline as docs_offline
from packetlab.docsite import vendor as docs_vendor


def test_vendored_mermaid_is_the_pinned_file():
    docs_vendor.verify(docs_vendor.MERMAID)
    assert docs_vendor.MERMAID.license_path.is_file(), "mermaid's MIT licence must ship next to it"


def test_verify_names_the_fix_when_the_copy_differs(tmp_path, monkeypatch):
    monkeypatch.setattr(docs_vendor, "DOCS_DIR", tmp_path)
    asset = docs_vendor.MERMAID
    with pytest.raises(docs_vendor.VendorError, match="is missing .*python -m packetlab.docsite.vendor"):
        docs_vendor.verify(asset)
    asset.path.parent.mkdir(parents=True)
    asset.path.write_text("tampered")
    with pytest.raises(docs_vendor.VendorError, match=f"is not mermaid {asset.version}"):
        docs_vendor.verify(asset)


def test_external_resources_finds_what_a_browser_would_fetch():
    html = """
    <link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">
    <link rel="preconnect" href="https://fonts.gstatic.com">
    <script src="//cdn.example/x.js"></script>
    <img srcset="local.png 1x, https://img.example/a.png 2x">
    <style>@import "https://css.example/a.css"; .x { background: url(https://img.example/b.png) }</style>
    <script type="module">const m = await import("https://cdnjs.example/mermaid.mjs");</script>
    <div style="background-image: url('http://img.example/c.png')"></div>
    """
    assert sorted(docs_offline.external_resources(html)) == sorted(
        [
            "https://fonts.googleapis.com/css?family=Roboto",
            "https://fonts.gstatic.com",
            "//cdn.example/x.js",
            "https://img.example/a.png",
            "https://css.example/a.css",
            "https://img.example/b.png",
            "https://cdnjs.example/mermaid.mjs",
            "http://img.example/c.png",
        ]
    )


def test_links_and_local_resources_are_not_external():
    html = """<a href="https://www.rfc-editor.org/rfc/rfc791">RFC 791</a>
    <script src="../assets/vendor/mermaid/mermaid.min.js"></script><img src="data:image/png;base64,AAAA">
    <link rel="canonical" href="https://example.org/">"""
    assert docs_offline.external_resources(html) == []


def _notebook(*sources: str, outputs=None) -> dict:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "# Lab"}]
    for src in sources:
        cells.append({"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None})
    if outputs:
        cells[1]["outputs"] = outputs
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _write(path: Path, nb: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


def test_page_source_uses_a_run_only_when_its_cells_are_the_labs(tmp_path):
    lab = _write(tmp_path / "labs" / "04-x.ipynb", _notebook("print(1)"))
    executed = tmp_path / "executed"
    assert docs_labs.page_source(lab, executed).outputs == "absent"

    _write(
        executed / lab.name, _notebook("print(2)", outputs=[{"output_type": "stream", "name": "stdout", "text": "2\n"}])
    )
    src = docs_labs.page_source(lab, executed)
    assert (src.outputs, src.path) == ("stale", lab)

    widget = {
        "output_type": "display_data",
        "metadata": {},
        "data": {docs_labs.WIDGET_VIEW: {"model_id": "abc"}, "text/plain": "HTML(value='')"},
    }
    run = _notebook("print(1)", outputs=[{"output_type": "stream", "name": "stdout", "text": "1\n"}, widget])
    run["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    _write(executed / lab.name, run)
    src = docs_labs.page_source(lab, executed)
    assert src.outputs == "executed" and src.path != lab and src.path.parent.name == "labs"
    assert docs_labs.src_dir(src) / "labs" / lab.name == src.path
    shown = json.loads(src.path.read_text())
    assert "widgets" not in shown["metadata"], "widget state makes nbconvert load the widget manager from a CDN"
    assert shown["cells"][1]["outputs"][1]["data"] == {"text/plain": docs_labs.WIDGET_NOTE}
    assert json.loads(lab.read_text())["cells"][1]["outputs"] == [], "the lab itself is never changed"


def test_adjust_html_folds_solutions_once_drops_cdn_loaders_and_adds_the_note(tmp_path):
    lab = tmp_path / "labs" / "04-x.ipynb"
    src = docs_labs.PageSource(lab, lab, "absent")
    html = """<div class="jp-Cell jp-MarkdownCell"><h1>Lab</h1></div>
    <script src=""> </script><script type="text/x-mathjax-config">init_mathjax()</script>
    <script type="module">const mermaid = (await import("https://cdnjs.example/mermaid.mjs")).default;</script>
    <div class="jp-Cell jp-CodeCell celltag_solution"><div class="jp-Cell jp-CodeCell celltag_solution">
      <div class="jp-InputArea">answer = 42</div></div></div>"""
    out = docs_labs.adjust_html(html, src)
    assert out.count("<details") == 1 and "<summary>Reference solution</summary>" in out
    assert "mathjax" not in out.lower() and "cdnjs" not in out and docs_offline.external_resources(out) == []
    assert out.index("</h1>") < out.index('data-outputs="absent"') < out.index("<details")
    assert "make test" in out and 'href="04-x.ipynb"' in out
