"""A C assignment's link opens its starter in JupyterLab's editor.

``make lab`` serves ``labs/`` only; the starters live in ``bpf/``, reached through the
``labs/bpf`` link. A lab's markdown links the starter relative to the notebook
(``[bpf/07-assign-proto-percpu.c](bpf/07-assign-proto-percpu.c)``), which JupyterLab opens
as ``lab/tree/bpf/07-assign-proto-percpu.c``: the file must open in the text editor, editable,
with its TODO markers — not a 404, not a download.
"""

from __future__ import annotations

from packetlab.course.m07_xdp.assignments import PROTO_PERCPU
from packetlab.testing.make_lab_server import LabServer

from .conftest import REPO, screenshot_path


def test_the_starter_link_opens_in_the_editor(lab_server: LabServer, page) -> None:
    starter = PROTO_PERCPU.starter  # bpf/07-assign-proto-percpu.c, as the lab links it
    lab = (REPO / "labs" / "07-xdp.ipynb").read_text()
    assert f"]({starter})" in lab
    page.goto(lab_server.url(f"lab/tree/{starter}?reset"))
    editor = page.locator(".jp-FileEditor .cm-content").first
    editor.wait_for(timeout=120_000)
    page.wait_for_function(
        "() => (document.querySelector('.jp-FileEditor .cm-content') || {}).innerText?.includes('count_proto')",
        timeout=60_000,
    )
    text = editor.inner_text()
    page.screenshot(path=str(screenshot_path("assignment-starter-in-editor")))
    assert "TODO 1" in text and "count_proto" in text
    assert editor.get_attribute("contenteditable") == "true"
    assert page.locator(".jp-Dialog").count() == 0
