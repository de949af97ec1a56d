"""How a lab notebook becomes a docs page: real outputs when a run left them, solutions folded.

Labs are committed without outputs (they would go stale and bloat the history), so
a page rendered from ``labs/NN-slug.ipynb`` alone shows code and every "Observe:"
points at nothing. ``make test`` runs every lab in JupyterLab (Run All, in Chromium) and keeps
the executed copy in ``build/executed/NN-slug.ipynb`` (ignored by git); the docs
build renders that copy when its cells are still the lab's cells, and says on the
page which case the reader is looking at (:func:`page_source`, :func:`note_html`).

The HTML that mkdocs-jupyter produces is then adjusted (:func:`adjust_html`):

- reference-solution cells (tag ``solution``, hidden in JupyterLab too) are folded
  into a closed ``<details>`` block, so the page does not hand out the answer
  above the exercise's check;
- nbconvert's loaders for MathJax and for its own Mermaid (both from CDNs) are
  removed: the labs use no TeX, and Mermaid in outputs is drawn by the theme with
  the site's vendored copy, like the lessons' diagrams.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup

from packetlab.paths import REPO_ROOT

ROOT = REPO_ROOT
EXECUTED_DIR = ROOT / "build" / "executed"  # written by `make test`: Run All in JupyterLab, as a learner runs it
SOLUTION_TAG = "solution"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "(a live widget: it draws and updates while the lab runs in JupyterLab)\n"

_render_dir: tempfile.TemporaryDirectory | None = None


@dataclass(frozen=True)
class PageSource:
    """The notebook a lab page is rendered from, and why that one."""

    lab: Path  # labs/NN-slug.ipynb, what the learner runs
    path: Path  # the file mkdocs-jupyter converts
    outputs: str  # "executed" (a real run's outputs), "absent" or "stale" (no outputs shown)
    run_at: float | None = None  # mtime of the executed copy


def src_dir(src: PageSource) -> Path:
    """The directory that holds ``labs/NN-slug.ipynb`` for this page (the checkout, or the render copy's).

    mkdocs-jupyter finds a notebook through ``File.src_dir`` (a generated File's own
    ``abs_src_path`` is lost in its wrapper), so the copy keeps the lab's relative path.
    """
    return src.path.parent.parent


def _cells(nb: dict) -> list[tuple[str, str]]:
    def text(src):
        return "".join(src) if isinstance(src, list) else src

    return [(c["cell_type"], text(c["source"]).strip()) for c in nb["cells"]]


def _static_outputs(nb: dict) -> dict:
    """The executed copy without what a static page cannot show and would fetch from a CDN.

    Live ipywidgets need the widget manager's JavaScript (nbconvert loads it from a
    CDN when the notebook carries widget state): their outputs are replaced by a
    one-line note, and the saved widget state is dropped.
    """
    nb["metadata"].pop("widgets", None)
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if data and WIDGET_VIEW in data:
                out["data"] = {"text/plain": WIDGET_NOTE}
    return nb


def page_source(lab: Path, executed_dir: Path = EXECUTED_DIR) -> PageSource:
    """Pick what the page for ``lab`` shows: its executed copy when that matches the lab, else the lab.

    An executed copy whose cells differ from the lab's (the lab was edited after
    the run) is not shown: its outputs would belong to other code.
    """
    executed = executed_dir / lab.name
    if not executed.is_file():
        return PageSource(lab, lab, "absent")
    try:
        run = json.loads(executed.read_text(encoding="utf-8"))
        same = _cells(run) == _cells(json.loads(lab.read_text(encoding="utf-8")))
    except (ValueError, KeyError):
        same = False
    if not same:
        return PageSource(lab, lab, "stale", executed.stat().st_mtime)
    global _render_dir
    if _render_dir is None:  # per process: `mkdocs serve` may run as a user who cannot write build/
        _render_dir = tempfile.TemporaryDirectory(prefix="packetlab-docs-")
    out = Path(_render_dir.name) / "labs" / lab.name  # same relative path as the lab: see src_dir()
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(_static_outputs(run), indent=1), encoding="utf-8")
    return PageSource(lab, out, "executed", executed.stat().st_mtime)


def note_html(src: PageSource) -> str:
    """An admonition telling the reader where the outputs on the page come from (or why there are none)."""
    download = f'<a href="{src.lab.name}" download><code>{src.lab.name}</code></a>'
    run_it = f"Run it yourself: <code>make lab</code> and open {download}."
    if src.outputs == "executed":
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(src.run_at))
        kind, title = "success", "Outputs from a real run"
        text = (
            f"The outputs below come from running this lab top to bottom on a real kernel "
            f"(<code>make test</code>, {when}). Yours will differ in addresses, timings and counts. {run_it}"
        )
    elif src.outputs == "stale":
        kind, title = "warning", "No outputs: the last run is older than this lab"
        text = (
            "The lab changed after <code>make test</code> last ran it, so its outputs are not shown. "
            f"They appear after the next <code>make test</code>. {run_it}"
        )
    else:
        kind, title = "info", "Code only: outputs appear after make test"
        text = (
            "This page shows the lab's code without outputs: they appear after <code>make test</code> "
            f"has run every lab (it keeps the executed copies in <code>build/executed/</code>). {run_it}"
        )
    return (
        f'<div class="admonition {kind} lab-outputs-note" data-outputs="{src.outputs}">'
        f'<p class="admonition-title">{title}</p><p>{text}</p></div>'
    )


def _is_cdn_loader(script) -> bool:
    """nbconvert's MathJax loader/config and its CDN Mermaid import: unused here, and remote."""
    if script.get("src") is not None and not script["src"].strip():
        return True  # MathJax, with no URL configured
    if script.get("type") == "text/x-mathjax-config":
        return True
    return script.get("type") == "module" and "import(" in (script.string or "") and "mermaid" in script.string


def adjust_html(html: str, src: PageSource) -> str:
    """Fold solution cells, drop CDN loaders and put the outputs note under the lab's title."""
    soup = BeautifulSoup(html, "html.parser")
    for script in soup.find_all("script"):
        if _is_cdn_loader(script):
            script.decompose()
    for cell in soup.select(f"div.jp-Cell.celltag_{SOLUTION_TAG}"):
        if cell.find_parent("div", class_=f"celltag_{SOLUTION_TAG}"):
            continue  # mkdocs-jupyter's template nests the lab template's cell div in its own
        details = soup.new_tag("details", attrs={"class": "tip solution"})
        summary = soup.new_tag("summary")
        summary.string = "Reference solution"
        cell.wrap(details)
        details.insert(0, summary)
    note = BeautifulSoup(note_html(src), "html.parser")
    first = soup.select_one("div.jp-Cell")
    if first is not None:
        first.insert_after(note)
    else:
        soup.insert(0, note)
    return str(soup)
