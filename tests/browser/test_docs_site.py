"""The course site in a real browser with no internet: whole, and useful.

Serves the BUILT site over HTTP on 127.0.0.1 and opens every page in headless
Chromium (``browser`` fixture, tests/browser/conftest.py), recording every
request. A page must load with no failed request, no HTTP error and no request
to any other host; every Mermaid diagram must become an SVG (not raw text, not
mermaid's error picture); search must find "conntrack"; each lesson must link
to its lab page; a lab page shows a real run's outputs exactly when
``build/executed/`` has a current copy, and keeps reference solutions folded.

The site is the one ``make test`` builds after pytest (``PACKETLAB_DOCS_SITE``,
so the executed copies of this run are in it); without that variable the test
builds one itself with ``mkdocs build --strict`` into a temporary directory.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from packetlab.docsite import labs as docs_labs
from packetlab.paths import lab_notebooks, lesson_pages

from .conftest import screenshot_path

REPO = Path(__file__).resolve().parents[2]
LABS = lab_notebooks()
LESSONS = lesson_pages()
MERMAID_TIMEOUT_MS = 20_000

# Test instrumentation, not product code: mkdocs-material draws each diagram into a
# *closed* shadow root; opening it lets the test see the SVG that was drawn.
OPEN_SHADOW_ROOTS = """
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) { return attach.call(this, {...init, mode: "open"}); };
"""

# For every diagram on the page: drawn (an SVG that is not mermaid's error picture) or why not.
MERMAID_STATE = """
async () => {
  const drawn = [], failed = [];
  for (const div of document.querySelectorAll("div.mermaid")) {
    const svg = div.shadowRoot && div.shadowRoot.querySelector("svg");
    if (!svg) { failed.push({source: "", error: "no SVG in the diagram's container"}); continue; }
    const role = svg.getAttribute("aria-roledescription") || "";
    if (role === "error" || /Syntax error/.test(svg.textContent)) failed.push({source: "", error: "mermaid error SVG"});
    else drawn.push(role);
  }
  for (const pre of document.querySelectorAll("pre.mermaid")) {        // never replaced by a drawing
    let error = "not rendered (is mermaid loaded?)";
    if (window.mermaid) {
      try { await window.mermaid.parse(pre.textContent); } catch (e) { error = String(e.message || e); }
    }
    failed.push({source: pre.textContent.slice(0, 300), error});
  }
  return {drawn, failed};
}
"""


def _build_site(dest: Path) -> Path:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    r = subprocess.run(
        [str(REPO / ".venv" / "bin" / "mkdocs"), "build", "--strict", "--quiet", "--site-dir", str(dest)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode:
        pytest.fail(f"mkdocs build --strict failed (exit {r.returncode}):\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return dest


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory) -> Path:
    """The built site: $PACKETLAB_DOCS_SITE (what `make test` built after pytest), else built here."""
    given = os.environ.get("PACKETLAB_DOCS_SITE")
    if given:
        path = Path(given)
        if not (path / "index.html").is_file():
            pytest.fail(f"PACKETLAB_DOCS_SITE={given} holds no built site (no index.html): run mkdocs build first")
        return path
    return _build_site(tmp_path_factory.mktemp("site"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def site_url(site_dir) -> Iterator[str]:
    """http://127.0.0.1:PORT/ serving the built site (a thread of this process, stopped after the session)."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site_dir))
    )
    thread = threading.Thread(target=server.serve_forever, name="docs-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _page_paths(site_dir: Path) -> list[str]:
    """Every page of the site as a URL path ("" for the home page), from the built files."""
    paths = []
    for index in sorted(site_dir.rglob("index.html")):
        rel = index.parent.relative_to(site_dir).as_posix()
        if rel.startswith(("assets", "search")):
            continue
        paths.append("" if rel == "." else rel + "/")
    return paths


@dataclass
class Visit:
    """What one page did in the browser."""

    path: str
    external: list[str] = field(default_factory=list)  # requests to any other host
    failed: list[str] = field(default_factory=list)  # requests that got no answer
    http_errors: list[str] = field(default_factory=list)  # answers >= 400
    js_errors: list[str] = field(default_factory=list)
    mermaid_expected: int = 0
    mermaid: dict = field(default_factory=dict)
    lab: dict = field(default_factory=dict)


@pytest.fixture(scope="session")
def visits(browser, site_dir, site_url) -> dict[str, Visit]:
    """Open every page once (one browser context) and record what it requested and drew."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(OPEN_SHADOW_ROOTS)
    page = context.new_page()
    current: list[Visit] = []

    def on_request(req):
        if not req.url.startswith((site_url, "data:", "blob:", "about:")):
            current[-1].external.append(req.url)

    page.on("request", on_request)
    page.on("requestfailed", lambda req: current[-1].failed.append(f"{req.url} ({req.failure})"))
    page.on("response", lambda resp: resp.status >= 400 and current[-1].http_errors.append(f"{resp.status} {resp.url}"))
    page.on("pageerror", lambda exc: current[-1].js_errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and current[-1].js_errors.append(msg.text))
    results: dict[str, Visit] = {}
    try:
        for path in _page_paths(site_dir):
            visit = Visit(path)
            current.append(visit)
            page.goto(site_url + path, wait_until="load")
            visit.mermaid_expected = page.locator("pre.mermaid, div.mermaid").count()
            if visit.mermaid_expected:
                try:  # drawn diagrams replace their <pre class="mermaid"> with a <div class="mermaid">
                    page.wait_for_function(
                        "document.querySelectorAll('pre.mermaid').length === 0", timeout=MERMAID_TIMEOUT_MS
                    )
                except Exception:
                    pass  # reported below, diagram by diagram
                visit.mermaid = page.evaluate(MERMAID_STATE)
            if path.startswith("labs/"):
                visit.lab = page.evaluate("""() => ({
                    wrapper: !!document.querySelector(".jupyter-wrapper"),
                    outputs: document.querySelectorAll(".jp-OutputArea-output").length,
                    note: (document.querySelector(".lab-outputs-note") || {dataset: {}}).dataset.outputs || null,
                    solutions: [...document.querySelectorAll("details.solution")].map(d => ({
                        open: d.open,
                        summary: d.querySelector("summary").textContent,
                        // a closed <details> hides its content with content-visibility, not display
                        codeVisible: [...d.querySelectorAll(".jp-InputArea")].some(e => e.checkVisibility()),
                    })),
                    // solution cells not inside a folded block (mkdocs-jupyter nests two cell divs)
                    unfolded: [...document.querySelectorAll(".jp-Cell.celltag_solution")]
                        .filter(c => !c.closest("details.solution")).length,
                })""")
            page.wait_for_load_state("networkidle")  # late requests (search index, scripts) count too
            results[path] = visit
            if path == "labs/04-iptables-nftables/":
                page.screenshot(path=str(screenshot_path("docs-lab-04")), full_page=False)
    finally:
        context.close()
    return results


def test_every_page_loads_only_from_the_site(visits):
    assert len(visits) >= len(LESSONS) + len(LABS) + 1, f"pages found: {sorted(visits)}"
    bad = {
        p: {k: v for k, v in (("external", v.external), ("failed", v.failed), ("http errors", v.http_errors)) if v}
        for p, v in visits.items()
        if v.external or v.failed or v.http_errors
    }
    assert not bad, "pages that requested other hosts or had failed requests:\n" + json.dumps(bad, indent=1)


def test_no_javascript_errors(visits):
    bad = {p: v.js_errors for p, v in visits.items() if v.js_errors}
    assert not bad, "JavaScript errors:\n" + json.dumps(bad, indent=1)


def test_every_mermaid_diagram_renders_as_svg(visits):
    with_diagrams = {p: v for p, v in visits.items() if v.mermaid_expected}
    assert with_diagrams, "no page has a Mermaid diagram: the lessons have several"
    bad = {p: v.mermaid["failed"] for p, v in with_diagrams.items() if v.mermaid["failed"]}
    assert not bad, "Mermaid diagrams that did not render:\n" + json.dumps(bad, indent=1)
    for p, v in with_diagrams.items():
        assert len(v.mermaid["drawn"]) == v.mermaid_expected, f"{p}: {v.mermaid}"


def test_lab_pages_show_outputs_exactly_when_a_current_run_exists(visits):
    for lab in LABS:
        path = f"labs/{lab.stem}/"
        assert path in visits, f"lab {lab.stem} has no page"
        info = visits[path].lab
        assert info["wrapper"], f"{path}: the notebook was not rendered (no .jupyter-wrapper)"
        expected = docs_labs.page_source(lab).outputs
        assert info["note"] == expected, f"{path}: the page says outputs={info['note']}, build/executed says {expected}"
        if expected == "executed":
            assert info["outputs"] > 0, f"{path}: rendered from a run but shows no output"
        else:
            assert info["outputs"] == 0, f"{path}: no current run, yet {info['outputs']} outputs are shown"


def test_solution_cells_are_collapsed(visits):
    for lab in LABS:
        nb = json.loads(lab.read_text())
        tagged = sum(docs_labs.SOLUTION_TAG in c["metadata"].get("tags", []) for c in nb["cells"])
        info = visits[f"labs/{lab.stem}/"].lab
        assert len(info["solutions"]) == tagged and not info["unfolded"], (
            f"{lab.stem}: {tagged} solution cells, page: {info}"
        )
        for s in info["solutions"]:
            assert not s["open"] and not s["codeVisible"] and s["summary"] == "Reference solution", f"{lab.stem}: {s}"


def test_search_finds_conntrack(page, site_url):
    page.goto(site_url, wait_until="load")
    page.locator("label.md-search__icon, .md-search__input").first.click()
    page.locator("input.md-search__input").press_sequentially("conntrack", delay=30)  # typed, as a reader does
    results = page.locator(".md-search-result__item")
    results.first.wait_for(state="visible", timeout=15_000)
    links = [results.nth(i).locator("a").first.get_attribute("href") for i in range(results.count())]
    assert any("03-connection-tracking" in (h or "") for h in links), f"search results: {links}"


@pytest.mark.parametrize("lesson", [p.stem for p in LESSONS if (REPO / "labs" / f"{p.stem}.ipynb").exists()])
def test_lesson_links_to_its_lab(page, site_url, lesson):
    page.goto(f"{site_url}{lesson}/", wait_until="domcontentloaded")  # what loads is test_every_page_...'s job
    link = page.locator(f'article a[href$="labs/{lesson}/"]').first
    assert link.count(), f"lesson {lesson} has no link to its lab page"
    link.click()
    page.wait_for_url(f"**/labs/{lesson}/", wait_until="domcontentloaded")
    assert page.locator(".jupyter-wrapper").count() == 1
    # and the footer leads back: the lab's "previous" page is its lesson
    assert page.locator(f'.md-footer__link--prev[href$="{lesson}/"]').count() == 1
