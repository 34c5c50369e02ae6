"""One dataset item as typed values, parsed once at the edge (API body, JSONL or CSV line, a
recorded call) with every bound of evaluations.limits checked; services receive `ItemData`.

Wire shape of an item (a JSONL line, an API body):
    {"input": {"messages": [{"role": "user", "content": "..."}]} | {"variables": {...}} | "plain text",
     "expected_output": "...", "expected_facts": ["..."], "context": [{"id": "...", "text": "..."}],
     "tags": ["..."], "metadata": {...}, "classification": "internal"}
Only `input` is required. A refusal is a `ValidationFailed` whose `param` names the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from core.classification import Clearance
from core.errors import ValidationFailed
from core.limits import path_text
from evaluations import limits

ITEM_FIELDS = ("input", "expected_output", "expected_facts", "context", "tags", "metadata", "classification")
MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass(frozen=True)
class ItemData:
    input: dict[str, Any]
    expected_output: str | None = None
    expected_facts: list[str] = field(default_factory=list)
    context: list[dict[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    classification: int | None = None  # None: the dataset's

    def as_document(self) -> dict[str, Any]:
        """The item as written in JSONL (what a dataset's item schema validates)."""
        document: dict[str, Any] = {"input": self.input}
        if self.expected_output is not None:
            document["expected_output"] = self.expected_output
        for name in ("expected_facts", "context", "tags", "metadata"):
            document[name] = getattr(self, name)
        return document


def _fail(message: str, param: str) -> ValidationFailed:
    return ValidationFailed(f"{param}: {message}", param=param)


def check_json_value(value: Any, *, root: str) -> None:
    """Bounds of any JSON an item holds: no NUL, no text over MAX_TEXT_CHARS nor more than
    MAX_ITEM_CHARS in all, integers within int64, finite numbers, at most MAX_JSON_DEPTH levels."""
    total = 0
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, (root,))]
    while stack:
        item, depth, path = stack.pop()
        if depth > limits.MAX_JSON_DEPTH + 2:  # the item object and its field are two levels
            raise _fail(f"nests more than {limits.MAX_JSON_DEPTH} levels deep; flatten it", path_text(path[:4]))
        if isinstance(item, str):
            if "\x00" in item:
                raise _fail("contains a NUL character, which cannot be stored; remove it", path_text(path))
            if len(item) > limits.MAX_TEXT_CHARS:
                raise _fail(
                    f"is {len(item):,} characters long; one text may have at most {limits.MAX_TEXT_CHARS:,}",
                    path_text(path),
                )
            total += len(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > limits.MAX_JSON_INTEGER:
                raise _fail(f"integers must lie within ±{limits.MAX_JSON_INTEGER} (64 bits)", path_text(path))
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _fail("numbers must be finite (no NaN or Infinity)", path_text(path))
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise _fail("object keys must be strings", path_text(path))
                if "\x00" in key or len(key) > limits.MAX_NAME_CHARS:
                    raise _fail(
                        f"has a key with a NUL character or over {limits.MAX_NAME_CHARS} characters", path_text(path)
                    )
                total += len(key)
                stack.append((child, depth + 1, (*path, key)))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1, (*path, index)) for index, child in enumerate(item))
        else:
            raise _fail(f"holds a {type(item).__name__}, which is not JSON", path_text(path))
        if total > limits.MAX_ITEM_CHARS:
            raise _fail(
                f"holds more than {limits.MAX_ITEM_CHARS:,} characters of text; an item may hold at most that", root
            )


def _string_list(value: Any, *, param: str, limit: int, item_chars: int, noun: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(f"must be a list of {noun}", param)
    if len(value) > limit:
        raise _fail(f"has {len(value):,} {noun}; at most {limit} are allowed", param)
    result = []
    for index, entry in enumerate(value):
        if not isinstance(entry, str) or not entry.strip():
            raise _fail(f"each entry must be a non-empty string ({noun})", f"{param}[{index}]")
        if len(entry) > item_chars:
            raise _fail(f"is {len(entry):,} characters long; at most {item_chars:,} are allowed", f"{param}[{index}]")
        result.append(entry)
    return result


def _input(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        if not value.strip():
            raise _fail("must not be empty", "input")
        return {"messages": [{"role": "user", "content": value}]}
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("messages", "variables"):
        raise _fail(
            'must be {"messages": [{"role": ..., "content": ...}, ...]}, {"variables": {...}} or a text', "input"
        )
    if "variables" in value:
        variables = value["variables"]
        if not isinstance(variables, dict):
            raise _fail("must be an object of variable names to values", "input.variables")
        if len(variables) > limits.MAX_VARIABLES:
            raise _fail(
                f"has {len(variables)} variables; at most {limits.MAX_VARIABLES} are allowed", "input.variables"
            )
        return {"variables": variables}
    messages = value["messages"]
    if not isinstance(messages, list) or not messages:
        raise _fail("must be a non-empty list of messages", "input.messages")
    if len(messages) > limits.MAX_MESSAGES:
        raise _fail(f"has {len(messages)} messages; at most {limits.MAX_MESSAGES} are allowed", "input.messages")
    for index, message in enumerate(messages):
        where = f"input.messages[{index}]"
        if not isinstance(message, dict) or not set(message) <= {"role", "content", "name"}:
            raise _fail("must be an object with role, content and optionally name", where)
        if message.get("role") not in MESSAGE_ROLES:
            raise _fail(f"role must be one of: {', '.join(MESSAGE_ROLES)}", f"{where}.role")
        if not isinstance(message.get("content"), str):
            raise _fail("content must be a string", f"{where}.content")
    return {"messages": messages}


def _context(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail('must be a list of documents {"id": ..., "text": ...}', "context")
    if len(value) > limits.MAX_DOCUMENTS:
        raise _fail(f"has {len(value)} documents; at most {limits.MAX_DOCUMENTS} are allowed", "context")
    documents = []
    for index, document in enumerate(value):
        where = f"context[{index}]"
        if isinstance(document, str):
            document = {"id": str(index + 1), "text": document}
        if not isinstance(document, dict) or set(document) != {"id", "text"}:
            raise _fail('must be {"id": ..., "text": ...} (or a text)', where)
        if not isinstance(document["id"], str) or not 0 < len(document["id"]) <= limits.MAX_DOCUMENT_ID_CHARS:
            raise _fail(f"id must be a string of 1 to {limits.MAX_DOCUMENT_ID_CHARS} characters", f"{where}.id")
        if not isinstance(document["text"], str):
            raise _fail("text must be a string", f"{where}.text")
        documents.append({"id": document["id"], "text": document["text"]})
    return documents


def parse_item(raw: Any) -> ItemData:
    """An item from its wire shape; a `ValidationFailed` names the first thing to fix."""
    if not isinstance(raw, dict):
        raise ValidationFailed("An item must be a JSON object with at least 'input'.", param="item")
    unknown = sorted(set(raw) - set(ITEM_FIELDS))
    if unknown:
        raise _fail(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(ITEM_FIELDS)}", unknown[0])
    if "input" not in raw:
        raise ValidationFailed("input: required (the messages or variables the target receives).", param="input")
    check_json_value(raw, root="item")
    expected = raw.get("expected_output")
    if expected is not None and not isinstance(expected, str):
        raise _fail("must be a string or null", "expected_output")
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _fail("must be an object", "metadata")
    if len(metadata) > limits.MAX_METADATA_KEYS:
        raise _fail(f"has {len(metadata)} keys; at most {limits.MAX_METADATA_KEYS} are allowed", "metadata")
    classification = raw.get("classification")
    if classification is not None:
        try:
            classification = int(Clearance.from_name(classification))
        except (ValueError, TypeError):
            raise _fail(f"must be one of: {', '.join(Clearance.level_names())}", "classification") from None
    return ItemData(
        input=_input(raw["input"]),
        expected_output=expected,
        expected_facts=_string_list(
            raw.get("expected_facts"),
            param="expected_facts",
            limit=limits.MAX_FACTS,
            item_chars=limits.MAX_FACT_CHARS,
            noun="facts",
        ),
        context=_context(raw.get("context")),
        tags=_string_list(
            raw.get("tags"), param="tags", limit=limits.MAX_TAGS, item_chars=limits.MAX_TAG_CHARS, noun="tags"
        ),
        metadata=metadata,
        classification=classification,
    )
