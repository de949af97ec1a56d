"""Reading YAML a user wrote (rule files, configs, Kubernetes objects): plain data or an `InputError`.

PyYAML's ``safe_load`` is safe from code execution, not from surprises: ``!x drop``
raises a ConstructorError, ``name: 2024-13-01`` a ValueError from the date parser
(and ``2024-01-01`` silently becomes a `datetime.date`), ``!!binary``/``!!set`` give
bytes and sets no tool expects, and a repeated key quietly keeps the last value. Each
tool would need the same four guards, so they are here, once, at the bottom layer:

* only the JSON-like core tags are accepted (map, seq, str, int, float, bool, null, and
  ``<<`` merges); any other tag is refused with its line;
* dates and times stay the strings they were written as (no timestamp resolver);
* a key repeated in one mapping is refused with both lines;
* every PyYAML error, and every ValueError/TypeError construction raises, becomes a
  `YamlError` (an `InputError`) naming the source, line and field — and each tool
  turns that into its own error (`RuleError`, `ConfigError`, `PolicyError`).

`load_all` also returns, for each document, the line of every field
(`Document.line_of(("vips", 0, "port"))`), so a tool that validates plain data can
still say where in the file a bad field is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from packetlab.errors import InputError

CORE_TAGS = frozenset("tag:yaml.org,2002:" + t for t in ("map", "seq", "str", "int", "float", "bool", "null", "merge"))
_CONSTRUCT_ERRORS = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError, AttributeError)

PathKey = tuple[Any, ...]  # ("vips", 0, "backends", 2, "weight")


class YamlError(InputError):
    """The YAML itself is refused (syntax, a tag, a repeated key, a value PyYAML cannot build)."""

    def __init__(self, source: str, line: int | None, message: str, field: str | None = None) -> None:
        self.source, self.line, self.field, self.message = source, line, field, message
        where = f"{source}" + (f", line {line}" if line else "") + (f", field {field}" if field else "")
        super().__init__(
            f"{where}: {message}",
            cause="the file is read as plain YAML data: mappings, lists, strings, numbers, booleans and null",
            fix="correct that line (no !tags; quote values that are meant as text)",
        )


class SafeLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader without the timestamp resolver: ``2024-13-01`` is the string it looks like."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


@dataclass
class Document:
    """One YAML document: its data, where it starts, and the line of each field (by path)."""

    data: Any
    source: str
    line: int
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[Any]) -> int:
        """The line of `path`, or of its deepest ancestor the file has (the document's start line)."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.line


def _mark_line(exc: BaseException, text: str) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return mark.line + 1
    pos = getattr(exc, "position", None)  # ReaderError: a character YAML does not allow
    return text.count("\n", 0, pos) + 1 if isinstance(pos, int) else None


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], source: str, done: set[int] | None = None) -> None:
    """Check tags and repeated keys of the tree under `node`; record each field's line.

    A node reached again through an alias (``*x``) is not walked again: nested aliases
    ("a billion laughs") would otherwise take exponential time."""
    done = set() if done is None else done
    if id(node) in done:
        return
    done.add(id(node))
    if node.tag not in CORE_TAGS:
        raise YamlError(
            source,
            node.start_mark.line + 1,
            f"the YAML tag {_tag(node.tag)} is not allowed",
            _dotted(path) or None,
        )
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for knode, vnode in node.value:
            if knode.tag not in CORE_TAGS:
                raise YamlError(source, knode.start_mark.line + 1, f"the YAML tag {_tag(knode.tag)} is not allowed")
            key: Any = knode.value if isinstance(knode, yaml.ScalarNode) else None
            line = knode.start_mark.line + 1
            if key is not None and knode.tag != "tag:yaml.org,2002:merge":
                if key in seen:
                    raise YamlError(
                        source,
                        line,
                        f"the key {key!r} appears twice in one mapping (also line {seen[key]})",
                        _dotted(path + (key,)),
                    )
                seen[key] = line
                lines.setdefault(path + (key,), line)
            _walk(vnode, path + (key,), lines, source, done)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.setdefault(path + (i,), item.start_mark.line + 1)
            _walk(item, path + (i,), lines, source, done)


def _tag(tag: str) -> str:
    return "!!" + tag.rsplit(":", 1)[1] if tag.startswith("tag:yaml.org,2002:") else tag


def _dotted(path: Sequence[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def path_of(dotted: str) -> PathKey:
    """``vips[0].backends[2].weight`` -> ("vips", 0, "backends", 2, "weight"): how tools name a field."""
    return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", dotted))


def compose(text: str, source: str = "<yaml>") -> tuple[yaml.Node | None, SafeLoader]:
    """The node tree of a single-document `text`, checked (tags, repeated keys), and its loader
    (for `construct`); the caller disposes of the loader. For tools that validate node by node."""
    try:
        loader = SafeLoader(text)  # (reading: a character YAML does not allow raises here)
    except yaml.YAMLError as exc:
        raise YamlError(
            source, _mark_line(exc, text), f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        ) from None
    try:
        node = loader.get_single_node()
        if node is not None:
            _walk(node, (), {}, source)
    except yaml.YAMLError as exc:
        loader.dispose()
        raise YamlError(
            source, _mark_line(exc, text), f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        ) from None
    except RecursionError:
        loader.dispose()
        raise YamlError(source, None, "nested too deeply") from None
    except YamlError:
        loader.dispose()
        raise
    return node, loader


def construct(loader: SafeLoader, node: yaml.Node, source: str = "<yaml>") -> Any:
    """Build the Python value of a checked node (a `YamlError` if PyYAML cannot)."""
    try:
        return loader.construct_object(node, deep=True)
    except _CONSTRUCT_ERRORS as exc:
        why = getattr(exc, "problem", None) or exc
        raise YamlError(source, node.start_mark.line + 1, f"cannot read this value: {why}") from None


def load_all(text: str, source: str = "<yaml>") -> list[Document]:
    """Every document of `text` as plain data, with lines; a `YamlError` for anything else."""
    try:
        loader = SafeLoader(text)
    except yaml.YAMLError as exc:
        raise YamlError(
            source, _mark_line(exc, text), f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        ) from None
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            lines: dict[PathKey, int] = {}
            _walk(node, (), lines, source)
            docs.append(Document(construct(loader, node, source), source, node.start_mark.line + 1, lines))
    except yaml.YAMLError as exc:
        raise YamlError(
            source, _mark_line(exc, text), f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        ) from None
    except RecursionError:
        raise YamlError(source, None, "nested too deeply") from None
    finally:
        loader.dispose()
    return docs


def load(text: str, source: str = "<yaml>") -> Document:
    """The one document of `text` (an empty text is a document whose data is None)."""
    docs = load_all(text, source)
    if len(docs) > 1:
        raise YamlError(source, docs[1].line, "expected one YAML document, found another one here ('---')")
    return docs[0] if docs else Document(None, source, 1)


def read(path: str | Path, what: str, fix: str) -> str:
    """The text of the file `path` (an `InputError` naming `what` if it cannot be read)."""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read {what} {path}", cause=getattr(exc, "strerror", None) or str(exc), fix=fix
        ) from None
