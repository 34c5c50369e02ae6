"""Per-process caches invalidated in every process at once.

Each cached subject (a prompt name, an application's policy, a team's catalog...) has a
generation token in Django's shared cache (Redis in production, locmem in the embedded
single-process default). A process keeps values keyed by that token; a change writes a
new token, so every process misses on its next lookup and reloads from the database. One
shared-cache read per lookup; no database query on a hit.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.core.cache import cache as shared_cache
from django.db import transaction

T = TypeVar("T")

_step = threading.local()


@contextmanager
def request_step() -> Iterator[None]:
    """Within one step of a request (one thread), each token is read from the shared cache at
    most once: a hot path that consults several caches pays one round trip per token, not per use."""
    _step.tokens = {}
    try:
        yield
    finally:
        _step.tokens = None


def generation_token(key: str) -> str:
    """The current token under `key` in the shared cache (made on first use)."""
    memo: dict[str, str] | None = getattr(_step, "tokens", None)
    if memo is not None and key in memo:
        return memo[key]
    token = shared_cache.get(key)
    if token is None:
        shared_cache.add(key, uuid.uuid4().hex, timeout=None)
        token = shared_cache.get(key)
    value = str(token)
    if memo is not None:
        memo[key] = value
    return value


def generation_write(key: str) -> None:
    """A new token under `key`: every process's values cached under the old one are stale."""
    memo: dict[str, str] | None = getattr(_step, "tokens", None)
    if memo is not None:
        memo.pop(key, None)
    shared_cache.set(key, uuid.uuid4().hex, timeout=None)


def generation_bump_key(key: str) -> None:
    """Invalidate now, and again when the transaction commits (another process could reload
    between the first write and the commit, and cache the old value under the new token)."""
    generation_write(key)
    transaction.on_commit(lambda: generation_write(key))


class GenerationCache:
    def __init__(self, namespace: str, *, max_entries: int = 10_000) -> None:
        self.namespace = namespace
        self.max_entries = max_entries
        self._entries: dict[tuple[Any, ...], tuple[str, Any]] = {}
        self._lock = threading.Lock()

    def _generation_key(self, subject: Hashable) -> str:
        return f"{self.namespace}:generation:{subject}"

    def bump(self, subject: Hashable) -> None:
        """Invalidate `subject` in every process: now, and again when the transaction commits.

        The second write closes a race: another process could reload between the first write
        and the commit, and cache the old value under the new token.
        """

        generation_bump_key(self._generation_key(subject))

    def _generation(self, subject: Hashable) -> str:
        return generation_token(self._generation_key(subject))

    def get_or_load(self, *, subject: Hashable, selector: tuple[Any, ...] = (), load: Callable[[], T]) -> T:
        # Read the token before the database, so a value is never stored under a newer token.
        generation = self._generation(subject)
        key = (subject, *selector)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == generation:
            return entry[1]
        value = load()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (generation, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
