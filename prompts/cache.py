"""Per-process resolution cache, invalidated in every process when a label moves.

Each prompt name has a generation token in Django's shared cache (Redis in production,
locmem in the embedded single-process default). A process keeps resolved versions keyed
by that token; a label move writes a new token, so every process misses on its next
lookup and reloads from the database. One shared-cache read per resolution; no database
query on a hit.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import cache as shared_cache
from django.db import transaction

T = TypeVar("T")
_MAX_ENTRIES = 10_000


def _generation_key(team_id: int, name: str) -> str:
    return f"prompts:generation:{team_id}:{name}"


def generation_bump(*, team_id: int, name: str) -> None:
    """Invalidate `name` in every process: now, and again when the transaction commits.

    The second write closes a race: another process could reload between the first write
    and the commit, and cache the old label under the new token.
    """

    def bump() -> None:
        shared_cache.set(_generation_key(team_id, name), uuid.uuid4().hex, timeout=None)

    bump()
    transaction.on_commit(bump)


class ResolutionCache:
    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], tuple[str, Any]] = {}
        self._lock = threading.Lock()

    def _generation(self, team_id: int, name: str) -> str:
        key = _generation_key(team_id, name)
        generation = shared_cache.get(key)
        if generation is None:
            shared_cache.add(key, uuid.uuid4().hex, timeout=None)
            generation = shared_cache.get(key)
        return str(generation)

    def get_or_load(self, *, team_id: int, name: str, selector: tuple[Any, ...], load: Callable[[], T]) -> T:
        # Read the token before the database, so a value is never stored under a newer token.
        generation = self._generation(team_id, name)
        key = (team_id, name, *selector)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == generation:
            return entry[1]
        value = load()
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (generation, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# The process-wide cache used by selectors.prompt_resolve.
resolution_cache = ResolutionCache()
