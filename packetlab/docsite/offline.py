"""Find what a built docs page would load from outside the site (it must load nothing).

The course site is read offline (a VM with no route out, CI's sandbox), and a page
that pulls a script, stylesheet or font from a CDN silently degrades there: raw
Mermaid source, missing fonts, hung spinners. The docs build fails on any such
reference (see ``packetlab/docsite/hooks.py``); the browser test then checks what a
real page actually requests at run time.

Links a reader clicks (``<a href>``) are fine: following them is the reader's choice.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, Tag

# element -> attributes whose URL the browser fetches on its own while showing the page
_FETCHED = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "input": ("src",),
    "image": ("href", "xlink:href"),
    "use": ("href", "xlink:href"),
}
# <link rel=...> values that make the browser fetch or connect
_LINK_RELS = {
    "stylesheet",
    "preload",
    "modulepreload",
    "prefetch",
    "preconnect",
    "dns-prefetch",
    "icon",
    "shortcut",
    "apple-touch-icon",
    "manifest",
}
_CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.I)
_JS_IMPORT = re.compile(r"""\bimport\s*\(\s*['"]((?:https?:)?//[^'"]+)""")


def is_external(url: str) -> bool:
    """True for absolute http(s) and protocol-relative URLs; data:, blob: and relative ones stay on the site."""
    u = url.strip().lower()
    return u.startswith(("http://", "https://", "//"))


def _text(tag: Tag, name: str) -> str:
    """An attribute's value as text: "" when absent, a multi-valued one (class, rel) joined by spaces."""
    value = tag.get(name)
    if value is None:
        return ""
    return value if isinstance(value, str) else " ".join(value)


def external_resources(html: str) -> list[str]:
    """Every outside URL the page would fetch by itself: src/href of loaded elements, CSS url()/@import, JS import()."""
    soup = BeautifulSoup(html, "html.parser")
    found: list[str] = []
    for tag in soup.find_all(True):
        if tag.name == "link":
            rels = {r.lower() for r in (tag.get("rel") or [])}
            if rels & _LINK_RELS and is_external(_text(tag, "href")):
                found.append(_text(tag, "href"))
        for attr in _FETCHED.get(tag.name, ()):
            value = _text(tag, attr)
            if value:
                urls = [part.split()[0] for part in value.split(",") if part.strip()] if "srcset" in attr else [value]
                found += [u for u in urls if is_external(u)]
        if style := _text(tag, "style"):
            found += _CSS_URL.findall(style)
        if tag.name == "style" and tag.string:
            found += _CSS_URL.findall(tag.string)
        if tag.name == "script" and tag.string:
            found += _JS_IMPORT.findall(tag.string)
    return found
