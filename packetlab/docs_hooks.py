"""mkdocs hook: put lessons (modules/) and labs (labs/) side by side, in course order.

The product layout keeps lessons in modules/ and notebooks in labs/; mkdocs has
one docs_dir. This hook adds every ``labs/NN-slug.ipynb`` as a page, makes the
README the home page, and builds the navigation from the ``NN-slug`` names so a
new module appears in the site without anyone editing mkdocs.yml.
"""
from __future__ import annotations

import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
_NN = re.compile(r"^(\d\d)-([a-z0-9-]+)$")


def _title(slug: str) -> str:
    acronyms = {"osi": "OSI", "nat": "NAT", "xdp": "XDP", "ebpf": "eBPF", "l4": "L4", "cni": "CNI"}
    return " ".join(acronyms.get(w, w.capitalize()) for w in slug.split("-"))


def on_config(config, **kwargs):
    nav: list = [{"Home": "index.md"}]
    lessons = {p.stem: p for p in sorted((ROOT / "modules").glob("[0-9][0-9]-*.md"))}
    labs = {p.stem: p for p in sorted((ROOT / "labs").glob("[0-9][0-9]-*.ipynb"))}
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
    config["nav"] = nav
    return config


@event_priority(100)   # before mkdocs-jupyter, so it converts the notebooks added here
def on_files(files, config, **kwargs):
    readme = (ROOT / "README.md").read_text()
    readme = re.sub(r"\]\(modules/([^)]+)\)", r"](\1)", readme)           # links into the site
    readme = re.sub(r"\]\(labs/([^)]+)\)", r"](labs/\1)", readme)
    files.append(File.generated(config, "index.md", content=readme))
    for nb in sorted((ROOT / "labs").glob("[0-9][0-9]-*.ipynb")):
        files.append(File(f"labs/{nb.name}", src_dir=str(ROOT), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files
