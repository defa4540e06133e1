"""Reading a YAML file that a person wrote (campaign and flow specs): safe, strict and bounded.

`read_yaml(path)` returns `(document, None)` or `(None, message)`; the caller names the file beside the message.
It never raises on the file's content:

- only plain data is built (a `yaml.SafeLoader`: no tags that run code);
- a key given twice in one mapping is refused instead of silently keeping the last value;
- collections nested deeper than `MAX_DEPTH` are refused before they are built (PyYAML builds nested nodes
  recursively: 20,000 levels of `[[[...]]]` overflowed Python's stack with a RecursionError naming no file);
- anchors and aliases stay shared references, so an alias "bomb" costs no memory here, and a document that
  contains itself is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_DEPTH = 50  # nested mappings / sequences; a spec needs 3 or 4


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice and collections nested deeper than MAX_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open: list[str | None] = []  # anchors of the collections being composed, outermost first

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) and event.anchor in self._open:
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} refers to a collection that "
                                              "contains it", event.start_mark)
        opens = isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent)
        if not opens:
            return super().compose_node(parent, index)
        if len(self._open) >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self._open.append(event.anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open.pop()


def _no_duplicate_keys(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, str) and key in seen:
            raise yaml.constructor.ConstructorError("while reading a mapping", node.start_mark,
                                                    f"key {key!r} appears twice", key_node.start_mark)
        if isinstance(key, str):
            seen.add(key)
    return loader.construct_mapping(node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def read_yaml(path: Path) -> tuple[Any, str | None]:
    """(document, None) or (None, message with the line number where the YAML says where)."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=StrictLoader), None  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return None, f"{where}{getattr(exc, 'problem', None) or exc}"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read file: {exc}"
    except RecursionError:  # not expected with MAX_DEPTH; a file must never take the loader down
        return None, "nested too deeply to read"
