"""In-process vector index of cache entries, one per scope, following the database.

Brute force over a float32 matrix: a lookup is one matrix-vector product over the scope's
entries (100,000 x 384 in a few milliseconds, bench/cache_bench.py), then masks for
clearance, conversation context and expiry on the few rows above the threshold.

The index may be stale; it is never trusted for correctness. It only proposes candidates:
the service serves an entry after re-reading it from the database (alive, not flagged, not
expired, same scope, clearance at most the caller's). Staleness only costs recall:
- entries written by this process are added at once (after their transaction commits);
- entries written by other processes appear within `sync_seconds`: a scope looks for rows
  created since its watermark (minus an overlap that covers slow commits and clock skew);
- bulk deletions (purge, a prompt's label moving, settings changes) bump the application's
  generation token in the shared cache, and each process reloads that scope on its next
  lookup;
- a candidate the database no longer has is dropped from the index when it is verified.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from core.embeddings import DIMENSIONS

# Rows created this long before the watermark are read again on each sync: a row becomes
# visible when its transaction commits, which may be after rows created later.
SYNC_OVERLAP = timedelta(seconds=10)
_INITIAL_CAPACITY = 64


def context_key(context_hash: str) -> int:
    """The first 64 bits of a context hash, for a vectorised equality mask."""
    return int(context_hash[:16], 16)


@dataclass(frozen=True)
class IndexRow:
    entry_id: str
    request_hash: str
    context_hash: str
    clearance: int
    expires_at: float  # epoch seconds
    created_at: datetime
    vector: np.ndarray | None


class ScopeIndex:
    """The entries of one scope. Thread-safe: writers hold the lock; readers take a snapshot."""

    def __init__(self, *, scope_hash: str, generation: str) -> None:
        self.scope_hash = scope_hash
        self.generation = generation
        self.synced_at = time.monotonic()
        self.watermark: datetime | None = None
        self._lock = threading.Lock()
        self._count = 0
        self._matrix: np.ndarray = np.zeros((0, DIMENSIONS), dtype=np.float32)
        self._clearances: np.ndarray = np.zeros(0, dtype=np.int16)
        self._contexts: np.ndarray = np.zeros(0, dtype=np.uint64)
        self._expires: np.ndarray = np.zeros(0, dtype=np.float64)
        self._alive: np.ndarray = np.zeros(0, dtype=bool)
        self._allocate(_INITIAL_CAPACITY)
        self._ids: list[str] = []
        self._positions: dict[str, int] = {}
        self._exact: dict[str, list[int]] = {}

    def _allocate(self, capacity: int) -> None:
        count = self._count
        matrix = np.zeros((capacity, DIMENSIONS), dtype=np.float32)
        clearances = np.zeros(capacity, dtype=np.int16)
        contexts = np.zeros(capacity, dtype=np.uint64)
        expires = np.zeros(capacity, dtype=np.float64)
        alive = np.zeros(capacity, dtype=bool)
        if count:
            matrix[:count] = self._matrix[:count]
            clearances[:count] = self._clearances[:count]
            contexts[:count] = self._contexts[:count]
            expires[:count] = self._expires[:count]
            alive[:count] = self._alive[:count]
        # Readers hold references to the old arrays; they stay valid until dropped.
        self._matrix, self._clearances, self._contexts, self._expires, self._alive = (
            matrix,
            clearances,
            contexts,
            expires,
            alive,
        )

    def __len__(self) -> int:
        return self._count

    def add_many(self, rows: Iterable[IndexRow]) -> int:
        added = 0
        with self._lock:
            for row in rows:
                if row.entry_id in self._positions:
                    continue
                if self._count == len(self._matrix):
                    self._allocate(len(self._matrix) * 2)
                position = self._count
                if row.vector is not None:
                    self._matrix[position] = row.vector
                self._clearances[position] = row.clearance
                self._contexts[position] = context_key(row.context_hash)
                self._expires[position] = row.expires_at
                # An entry without a vector (no user text to embed) matches exactly only.
                self._alive[position] = True
                self._ids.append(row.entry_id)
                self._positions[row.entry_id] = position
                self._exact.setdefault(row.request_hash, []).append(position)
                self._count = position + 1
                if self.watermark is None or row.created_at > self.watermark:
                    self.watermark = row.created_at
                added += 1
        return added

    def known_ids(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._positions)

    def remove(self, entry_id: str) -> None:
        with self._lock:
            position = self._positions.get(entry_id)
            if position is not None:
                self._alive[position] = False
                # The matrix row stays (positions are stable); a zero row never reaches a
                # positive threshold.
                self._matrix[position] = 0.0

    def exact(self, *, request_hash: str, clearance: int, now: float) -> list[str]:
        with self._lock:
            positions = list(self._exact.get(request_hash, ()))
            return [
                self._ids[position]
                for position in positions
                if self._alive[position] and self._clearances[position] <= clearance and self._expires[position] > now
            ]

    def search(
        self,
        *,
        vector: np.ndarray,
        context_hash: str,
        clearance: int,
        threshold: float,
        now: float,
        limit: int = 4,
    ) -> list[tuple[str, float]]:
        """Up to `limit` (entry id, cosine similarity) at or above `threshold`, best first."""
        with self._lock:
            count = self._count
            matrix, clearances, contexts, expires, alive = (
                self._matrix,
                self._clearances,
                self._contexts,
                self._expires,
                self._alive,
            )
            ids = self._ids
        if count == 0:
            return []
        scores = matrix[:count] @ vector.astype(np.float32, copy=False)
        positions = np.flatnonzero(scores >= threshold)
        if positions.size == 0:
            return []
        keep = (
            alive[positions]
            & (clearances[positions] <= clearance)
            & (expires[positions] > now)
            & (contexts[positions] == np.uint64(context_key(context_hash)))
        )
        positions = positions[keep]
        if positions.size == 0:
            return []
        best = positions[np.argsort(-scores[positions], kind="stable")[:limit]]
        return [(ids[position], float(min(scores[position], 1.0))) for position in best]


Loader = Callable[..., list[IndexRow]]


class IndexRegistry:
    """The scope indexes of one process (tests make two to act as two processes).

    `load(scope_hash=..., since=None|datetime)` returns the live rows of a scope (created at
    or after `since` when given).
    """

    def __init__(self, *, load: Loader, sync_seconds: float = 1.0, max_scopes: int = 1_000) -> None:
        self._load = load
        self.sync_seconds = sync_seconds
        self.max_scopes = max_scopes
        self._scopes: OrderedDict[str, ScopeIndex] = OrderedDict()
        self._lock = threading.Lock()
        # One loader per scope at a time; other threads wait for its result.
        self._load_locks: dict[str, threading.Lock] = {}

    def scope(self, *, scope_hash: str, generation: str) -> ScopeIndex:
        index = self._scopes.get(scope_hash)
        if index is not None and index.generation == generation:
            if time.monotonic() - index.synced_at >= self.sync_seconds:
                self._sync(index)
            with self._lock:
                if scope_hash in self._scopes:
                    self._scopes.move_to_end(scope_hash)
            return index
        with self._lock:
            load_lock = self._load_locks.setdefault(scope_hash, threading.Lock())
        with load_lock:
            index = self._scopes.get(scope_hash)
            if index is not None and index.generation == generation:
                return index
            index = ScopeIndex(scope_hash=scope_hash, generation=generation)
            index.add_many(self._load(scope_hash=scope_hash, since=None))
            index.synced_at = time.monotonic()
            with self._lock:
                self._scopes[scope_hash] = index
                self._scopes.move_to_end(scope_hash)
                while len(self._scopes) > self.max_scopes:
                    evicted, _ = self._scopes.popitem(last=False)
                    self._load_locks.pop(evicted, None)
            return index

    def _sync(self, index: ScopeIndex) -> None:
        # Claim the sync first so that concurrent lookups do not all query.
        index.synced_at = time.monotonic()
        since = index.watermark - SYNC_OVERLAP if index.watermark is not None else None
        index.add_many(self._load(scope_hash=index.scope_hash, since=since, known=index.known_ids()))

    def loaded(self, scope_hash: str) -> ScopeIndex | None:
        return self._scopes.get(scope_hash)

    def remove(self, entry_id: str) -> None:
        for index in list(self._scopes.values()):
            index.remove(entry_id)

    def clear(self) -> None:
        with self._lock:
            self._scopes.clear()
            self._load_locks.clear()
