"""One loader for the YAML files the project reads (the catalog file, prompts as code).

It keeps the YAML node tree next to the data, so that a reader can name `file:line` for any
value it refuses, however deep: `document.error(document.node_at("messages[1].content"), ...)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# `messages[1].content` -> ("", "messages"), ("1", ""), ("", "content")
_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


class YamlFileError(Exception):
    """The file cannot be read or is not YAML. `str(error)` is `file:line: message`."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


@dataclass(frozen=True)
class YamlDocument:
    path: Path
    data: Any  # what yaml.safe_load would return
    root: yaml.Node | None  # None for an empty file

    def node_at(self, path: str) -> yaml.Node | None:
        """The deepest node along `path` (`section[2].name`): the one named, or the last one
        that exists on the way to it (the root when none does)."""
        node = self.root
        for index, key in _PATH_PART.findall(path):
            found = _child(node, index, key)
            if found is None:
                break
            node = found
        return node

    def find(self, path: str) -> yaml.Node | None:
        """The node `path` names, or None when any step of it is missing."""
        node = self.root
        for index, key in _PATH_PART.findall(path):
            node = _child(node, index, key)
            if node is None:
                return None
        return node

    def error(self, where: yaml.Node | int | None, message: str) -> str:
        """`file:line: message`, the line of a node (or a line number; None: line 1)."""
        return f"{self.path}:{where if isinstance(where, int) else line_of(where)}: {message}"


def line_of(node: yaml.Node | None) -> int:
    """The 1-based line a node starts on (1 without a node)."""
    return node.start_mark.line + 1 if node is not None else 1


def value_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    """The value node of `key` in a mapping node (None: not a mapping, or no such key)."""
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((value for name, value in node.value if getattr(name, "value", None) == key), None)


def _child(node: yaml.Node | None, index: str, key: str) -> yaml.Node | None:
    if index and isinstance(node, yaml.SequenceNode):
        return node.value[int(index)] if int(index) < len(node.value) else None
    if key:
        return value_node(node, key)
    return None


def load(path: Path) -> YamlDocument:
    """Read and parse one YAML document (safe types only). YamlFileError names the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise YamlFileError(path, 1, f"cannot read the file ({error.strerror}).") from None
    except UnicodeDecodeError:
        raise YamlFileError(path, 1, "cannot read the file (it is not UTF-8 text).") from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlFileError(path, line, f"invalid YAML: {error.problem or error}") from None
    except yaml.YAMLError as error:  # e.g. a reader error on a control character, without a mark
        raise YamlFileError(path, 1, f"invalid YAML: {error}") from None
    return YamlDocument(path=path, data=data, root=root)
