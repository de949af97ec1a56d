"""mkdocs hook: the course site from modules/ and labs/, in course order, readable offline.

The product layout keeps lessons in modules/ and notebooks in labs/; mkdocs has
one docs_dir. This hook adds every ``labs/NN-slug.ipynb`` as a page, makes the
README the home page, and builds the navigation from the ``NN-slug`` names so a
new module appears in the site without anyone editing mkdocs.yml. After the modules come
the learners' help pages (``HELP_PAGES``: troubleshooting, glossary) under "Help", and the
pages for contributors (``CONTRIBUTOR_PAGES``, e.g. the architecture) last, under "For contributors".

It also makes the site whole without a network:

- Mermaid is served from the site's vendored, sha256-pinned copy
  (``packetlab.docsite.vendor``), which mkdocs-material uses instead of its CDN;
- a lab page shows the outputs of the last real run (``make test``) when there is
  one, folds reference solutions, and loses nbconvert's CDN loaders
  (``packetlab.docsite.labs``);
- the build fails if any page would still fetch something from another host
  (``packetlab.docsite.offline``).

Lessons say "Open `labs/NN-slug.ipynb`"; on the site that becomes a link to the lab page.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

from packetlab.docsite import labs as docs_labs
from packetlab.docsite import offline as docs_offline
from packetlab.docsite import vendor as docs_vendor
from packetlab.paths import MODULE_STEM, REPO_ROOT, lab_notebooks, lesson_pages

ROOT = REPO_ROOT
_NN = MODULE_STEM
_LAB_MENTION = re.compile(r"(?<!\[)`labs/(\d\d[a-z]?-[a-z0-9-]+)\.ipynb`(?!\])")
_sources: dict[str, docs_labs.PageSource] = {}  # src_uri of a lab page -> what it is rendered from
# pages for learners that belong to no module, in modules/ without a number: after the modules and the quick reference
HELP_PAGES = {"Troubleshooting": "troubleshooting.md", "Glossary": "glossary.md"}
# pages for people who change the course, in modules/ without a number: last
CONTRIBUTOR_PAGES = {"Architecture": "architecture.md"}


_serving = False  # `mkdocs serve` (make docs): the learner's own machine, so the home page shows their progress


def on_startup(command: str, dirty: bool, **kwargs: Any) -> None:
    global _serving
    _serving = command == "serve"


def on_serve(server: Any, config: Any, builder: Any, **kwargs: Any) -> Any:
    """Rebuild when a check records progress, so the home page's table follows the labs."""
    from packetlab.course.progress import data_dir

    if data_dir().is_dir():
        server.watch(str(data_dir()))
    return server


def _with_progress(readme: str) -> str:
    """The README with the learner's progress table before "## The modules" (only under `mkdocs serve`)."""
    from packetlab.course.progress import progress_markdown

    section = progress_markdown()
    marker = "\n## The modules"
    return readme.replace(marker, "\n" + section + marker, 1) if marker in readme else readme + "\n" + section


def _title(slug: str) -> str:
    acronyms = {"osi": "OSI", "nat": "NAT", "xdp": "XDP", "ebpf": "eBPF", "l4": "L4", "cni": "CNI"}
    return " ".join(acronyms.get(w, w.capitalize()) for w in slug.split("-"))


def _labs() -> list[Path]:
    return lab_notebooks()


def on_config(config: Any, **kwargs: Any) -> Any:
    nav: list[dict[str, Any]] = [{"Home": "index.md"}]
    lessons = {p.stem: p for p in lesson_pages()}
    labs = {p.stem: p for p in _labs()}
    for stem in sorted(set(lessons) | set(labs)):
        m = _NN.match(stem)
        if not m:
            continue
        section = f"{m.group(1)} · {_title(m.group(2))}"
        pages = []
        if stem in lessons:
            pages.append({"Lesson": f"{stem}.md"})
        if stem in labs:
            pages.append({"Lab": f"labs/{stem}.ipynb"})
        nav.append({section: pages if len(pages) > 1 else pages[0][next(iter(pages[0]))]})
    for section, pages_by_title in (("Help", HELP_PAGES), ("For contributors", CONTRIBUTOR_PAGES)):
        present = [{title: page} for title, page in pages_by_title.items() if (ROOT / "modules" / page).is_file()]
        if present:
            nav.append({section: present})
    config["nav"] = nav

    # Mermaid from the site itself: mkdocs-material only fetches its CDN copy when `mermaid` is undefined.
    for asset in docs_vendor.PINNED:
        try:
            docs_vendor.verify(asset)
        except docs_vendor.VendorError as e:
            raise PluginError(str(e)) from None
        if asset.site_path not in [str(s) for s in config["extra_javascript"]]:
            config["extra_javascript"].append(asset.site_path)

    # mkdocs-jupyter caches converted pages under ./.cache by default: a root `make test` would leave
    # a root-owned cache in the checkout that a learner's `make docs` cannot write. One cache per user.
    jupyter = config["plugins"].get("mkdocs-jupyter")
    if jupyter is not None:
        cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        jupyter.config["cache_dir"] = str(cache_home / "packetlab" / "mkdocs-jupyter")
    return config


@event_priority(100)  # before mkdocs-jupyter, so it converts the notebooks added here
def on_files(files, config, **kwargs):
    readme = (ROOT / "README.md").read_text()
    readme = re.sub(r"\]\(modules/([^)]+)\)", r"](\1)", readme)  # links into the site
    readme = re.sub(r"\]\(labs/([^)]+)\)", r"](labs/\1)", readme)
    if _serving:
        readme = _with_progress(readme)
    files.append(File.generated(config, "index.md", content=readme))
    _sources.clear()
    for nb in _labs():
        src = docs_labs.page_source(nb)
        uri = f"labs/{nb.name}"
        _sources[uri] = src
        files.append(
            File(
                uri,
                src_dir=str(docs_labs.src_dir(src)),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    """In lessons, "`labs/NN-slug.ipynb`" (outside code blocks) links to that lab's page."""
    if page.file.src_uri.startswith("labs/"):
        return markdown
    out, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced:
            line = _LAB_MENTION.sub(
                lambda m: f"[`labs/{m[1]}.ipynb`](labs/{m[1]}.ipynb)" if f"labs/{m[1]}.ipynb" in _sources else m[0],
                line,
            )
        out.append(line)
    return "".join(out)


def on_page_content(html, page, config, files, **kwargs):
    src = _sources.get(page.file.src_uri)
    return docs_labs.adjust_html(html, src) if src else html


@event_priority(-100)  # after every other plugin changed the page
def on_post_page(output, page, config, **kwargs):
    external = docs_offline.external_resources(output)
    if external:
        raise PluginError(
            f"page {page.file.src_uri} would load {len(external)} resource(s) from outside the site, "
            f"which breaks it offline: {', '.join(sorted(set(external))[:5])}. Vendor them under "
            "modules/assets/ (see packetlab/docsite/vendor.py) or remove them."
        )
    return output


@event_priority(-100)  # after mkdocs-jupyter copied the rendered notebook next to its page
def on_post_build(config, **kwargs):
    """The notebook offered for download next to a lab page is the lab itself, never a run's copy."""
    for uri, src in _sources.items():
        page_dir = Path(config["site_dir"]) / (uri[: -len(".ipynb")] if config["use_directory_urls"] else "labs")
        page_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src.lab, page_dir / src.lab.name)
