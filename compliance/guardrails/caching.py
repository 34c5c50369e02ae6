"""Process-local caches invalidated across processes through a generation token in Django's cache.

A change writes a new random token under the object's key; every process compares the token it
loaded with the current one on each lookup (one cache read) and reloads when they differ.
A missing token (evicted, or never written) also differs from any loaded one, so eviction can
only cause a reload, never a stale read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from core.generation_cache import generation_token, generation_write

ValueT = TypeVar("ValueT")
_MISSING = "missing"


def generation(key: str) -> str:
    return generation_token(key)


def bump(key: str) -> None:
    generation_write(key)


class GenerationCache(Generic[ValueT]):
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._entries: dict[int, tuple[str, ValueT]] = {}
        self._lock = threading.Lock()

    def key(self, object_id: int) -> str:
        return f"guardrails:{self.prefix}:{object_id}:generation"

    def get(self, object_id: int, load: Callable[[], ValueT]) -> ValueT:
        current = generation(self.key(object_id))
        entry = self._entries.get(object_id)
        if entry is not None and entry[0] == current:
            return entry[1]
        value = load()
        with self._lock:
            self._entries[object_id] = (current, value)
        return value

    def invalidate(self, object_id: int) -> None:
        bump(self.key(object_id))
        with self._lock:
            self._entries.pop(object_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
