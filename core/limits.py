"""Bounds on the size of one request, shared by the gateway (/v1/chat/completions) and the
prompt render API: how many messages, documents, tools and variables it may carry, how long
one text may be and how much text it may hold in all (the REQUEST_MAX_* settings).

The cost of a request (token counting, guardrails, context assembly, recording) grows with
each of these dimensions: before the limits, 1,000 messages took 11 s, 10,000 over 60 s, and
a 3.9 MB message ended in a 500 from the PII analyzer. A request over a limit is refused with
a 400 that names the setting, before any work is done for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.conf import settings

from core.errors import ValidationFailed

Path = tuple[str | int, ...]


def path_text(path: Path) -> str:
    """("messages", 3, "content") -> "messages[3].content"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _strings(value: Any, path: Path) -> Iterator[tuple[str, Path]]:
    """Every string inside `value` (keys too), with where it is; iterative, so depth costs no stack."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            yield item, where
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    yield key, where
                stack.append((child, (*where, key)))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, (*where, index)) for index, child in enumerate(item))


def check_count(value: Any, *, param: str, setting: str, noun: str, code: str) -> None:
    """Refuse a list (or object) with more entries than the setting allows."""
    limit = getattr(settings, setting)
    if isinstance(value, (list, tuple, dict)) and len(value) > limit:
        raise ValidationFailed(
            f"'{param}' has {len(value):,} {noun}; at most {limit:,} are allowed (the server's {setting}). "
            f"Send fewer {noun}.",
            code=code,
            param=param,
        )


def check_text(fields: Sequence[tuple[Path, Any]]) -> None:
    """Refuse a request with one text over REQUEST_MAX_TEXT_CHARS characters, or more than
    REQUEST_MAX_TOTAL_CHARS characters of text in all, over every string inside `fields`."""
    text_limit, total_limit = settings.REQUEST_MAX_TEXT_CHARS, settings.REQUEST_MAX_TOTAL_CHARS
    total = 0
    for root, value in fields:
        for text, where in _strings(value, root):
            if len(text) > text_limit:
                raise ValidationFailed(
                    f"'{path_text(where)}' is {len(text):,} characters long; one text may have at most "
                    f"{text_limit:,} characters (the server's REQUEST_MAX_TEXT_CHARS). Shorten or split it.",
                    code="text_too_long",
                    param=path_text(where),
                )
            total += len(text)
    if total > total_limit:
        names = ", ".join(path_text(root) for root, _ in fields)
        raise ValidationFailed(
            f"The request holds {total:,} characters of text ({names}); at most {total_limit:,} are allowed in "
            f"one request (the server's REQUEST_MAX_TOTAL_CHARS). Send less text.",
            code="request_too_large",
            param=None,
        )


# How deeply arrays and objects may nest in a request body (the REST API's call ingestion). The
# deepest legitimate shapes stay far below; storing and reading a record walk its JSON
# recursively, so a body a few hundred levels deep ended in a RecursionError (a 500).
MAX_NESTING_DEPTH = 64


def check_nesting(value: Any, *, limit: int = MAX_NESTING_DEPTH, advice: str = "Flatten it.") -> None:
    """Refuse `value` when arrays and objects nest in it more than `limit` levels deep (the
    value itself is the first), naming where by the first three steps of the path; iterative,
    so that a deep value does not exhaust the checker's own stack."""
    stack: list[tuple[Any, int, Path]] = [(value, 1, ())] if isinstance(value, dict | list) else []
    while stack:
        item, depth, path = stack.pop()
        if depth > limit:
            where = path_text(path[:3])
            raise ValidationFailed(
                f"'{where}' nests arrays and objects more than {limit} levels deep; the request body may "
                f"nest at most {limit} levels. {advice}",
                code="nesting_too_deep",
                param=where,
            )
        children = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, (*path, key) if len(path) < 3 else path))
