"""A bounded, thread-safe, least-recently-used map: what a guardrail found in a text before.

A conversation resends its whole history with every turn; the PII check (spans of a text)
and the injection classifier (probability of a chunk) remember what they found, keyed by the
application (nothing, not even the timing of a hit, is shared between tenants) and a digest
of the text, so that each message is analysed once instead of once per turn.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

KeyT = TypeVar("KeyT", bound=Hashable)
ValueT = TypeVar("ValueT")


def text_digest(text: str) -> bytes:
    """16 bytes that stand for `text` in a cache key (lone surrogates included)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class LruCache(Generic[KeyT, ValueT]):
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[KeyT, ValueT] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: KeyT) -> ValueT | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: KeyT, value: ValueT) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
