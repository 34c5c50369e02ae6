"""Structured diff between two versions: messages (line by line), params, variables, budget."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from prompts.models import PromptVersion

SAME = "same"
CHANGED = "changed"
ADDED = "added"
REMOVED = "removed"


def _line_ops(before: str, after: str) -> list[dict[str, Any]]:
    """Side-by-side rows: {op, left, right} with op in equal/replace/insert/delete."""
    left, right = before.splitlines(), after.splitlines()
    rows: list[dict[str, Any]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=left, b=right, autojunk=False).get_opcodes():
        span = max(i2 - i1, j2 - j1)
        for offset in range(span):
            rows.append(
                {
                    "op": op,
                    "left": left[i1 + offset] if i1 + offset < i2 else None,
                    "right": right[j1 + offset] if j1 + offset < j2 else None,
                }
            )
    return rows


def _mapping_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        if key not in after:
            changes[key] = {"status": REMOVED, "from": before[key], "to": None}
        elif key not in before:
            changes[key] = {"status": ADDED, "from": None, "to": after[key]}
        elif before[key] != after[key]:
            changes[key] = {"status": CHANGED, "from": before[key], "to": after[key]}
    return changes


def _messages_diff(before: Sequence[Mapping[str, str]], after: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    result = []
    for index in range(max(len(before), len(after))):
        old = before[index] if index < len(before) else None
        new = after[index] if index < len(after) else None
        if old is None:
            status = ADDED
        elif new is None:
            status = REMOVED
        else:
            status = SAME if old == new else CHANGED
        old_content = old["content"] if old else ""
        new_content = new["content"] if new else ""
        result.append(
            {
                "index": index,
                "status": status,
                "role": {"from": old["role"] if old else None, "to": new["role"] if new else None},
                "unified": list(
                    difflib.unified_diff(
                        old_content.splitlines(), new_content.splitlines(), "from", "to", lineterm="", n=2
                    )
                ),
                "lines": _line_ops(old_content, new_content),
            }
        )
    return result


def version_diff(old: PromptVersion, new: PromptVersion) -> dict[str, Any]:
    variables_before, variables_after = set(old.variables), set(new.variables)
    messages = _messages_diff(old.messages, new.messages)
    params = _mapping_diff(old.params, new.params)
    budget = _mapping_diff(old.context_budget, new.context_budget)
    return {
        "from": old.number,
        "to": new.number,
        "identical": old.content_hash == new.content_hash,
        "messages": messages,
        "params": params,
        "variables": {
            "added": sorted(variables_after - variables_before),
            "removed": sorted(variables_before - variables_after),
        },
        "context_budget": budget,
    }
