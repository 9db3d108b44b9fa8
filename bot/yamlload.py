"""Stage one of manifest parsing: bytes -> plain Python values plus the line of every field.

PyYAML's composer gives nodes with positions; we walk them ourselves so that stage two can
say `models/x.yaml:7: spec.version: ...`. Anchors and aliases are refused outright: no
manifest needs them, and refusing them is the simplest complete defence against alias bombs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_DOCUMENT_BYTES = 256 * 1024
MAX_DEPTH = 32

# The C loader is 5-10x faster; fall back when libyaml is absent.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple[str | int, ...]


class YamlError(ValueError):
    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


@dataclass
class RawDocument:
    """A YAML document as plain values, with the 1-based line of each field path."""

    file: str
    data: object
    lines: dict[Path_, int] = field(default_factory=dict)
    # The source text of each scalar: `version: 1.10` is the float 1.1 to YAML, "1.10" to us.
    texts: dict[Path_, str] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        # Walk up to the nearest ancestor that has a line (a missing field's parent).
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


def _check_no_aliases(text: str | bytes, file: str) -> None:
    for event in yaml.parse(text, Loader=_Loader):
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) or anchor is not None:
            line = event.start_mark.line + 1 if event.start_mark else None
            raise YamlError(file, line, "YAML anchors and aliases are not allowed in manifests")


def load_yaml(text: str | bytes, file: str) -> RawDocument:
    """Parse one YAML document; errors carry the file and line."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > MAX_DOCUMENT_BYTES:
        raise YamlError(file, None, f"document is {size} bytes; the limit is {MAX_DOCUMENT_BYTES}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlError(file, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        if "&" in text or "*" in text:  # cheap pre-filter; the event walk is exact
            _check_no_aliases(text, file)
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlError(file, line, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlError(file, None, f"invalid YAML: {exc}") from None
    if len(nodes) > 1:
        line = nodes[1].start_mark.line + 1
        raise YamlError(file, line, "one document per file, found a second '---' document")
    doc = RawDocument(file=file, data=None)
    if nodes:
        doc.data = _walk(nodes[0], (), doc, 0)
    return doc


def _walk(node: yaml.Node, path: Path_, doc: RawDocument, depth: int) -> object:
    if depth > MAX_DEPTH:
        raise YamlError(doc.file, node.start_mark.line + 1, f"nesting deeper than {MAX_DEPTH}")
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, object] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError(doc.file, key_node.start_mark.line + 1, "mapping keys must be plain strings")
            key = str(key_node.value)
            if key == "<<":
                raise YamlError(doc.file, key_node.start_mark.line + 1, "YAML merge keys are not allowed")
            if key in out:
                raise YamlError(doc.file, key_node.start_mark.line + 1, f"duplicate key {key!r}")
            child = (*path, key)
            out[key] = _walk(value_node, child, doc, depth + 1)
            doc.lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), doc, depth + 1) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    doc.texts[path] = str(node.value)
    return _scalar(node)


_constructor = yaml.SafeLoader("")


def _scalar(node: yaml.ScalarNode) -> object:
    # Resolve the scalar exactly as safe_load would (ints, floats, bools, null, strings),
    # but refuse timestamps and binary: manifests keep versions and dates as strings.
    if node.tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"):
        return str(node.value)
    return _constructor.construct_object(node, deep=True)
