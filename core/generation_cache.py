"""Per-process caches invalidated in every process at once.

Each cached subject (a prompt name, an application's policy, a team's catalog...) has a
generation token in Django's shared cache (Redis in production, one SQLite file under the
var folder in the embedded default: core.cache.SQLiteCache). A process keeps values
keyed by that token; a change writes a new token, so every process (web server, worker,
`manage.py` commands) misses on its next lookup and reloads from the database. No database
query on a hit. The shared cache must be shared: with `locmemcache://` a change made by
another process is never seen.

Epoch: one shared-cache read per request step, however many tokens the step reads.
Every `generation_write` writes the subject's new token and THEN a new random token under
one global epoch key. A process keeps a table subject key -> token, valid for the epoch it
was filled under. Inside `request_step()` the first token lookup reads the epoch; when it
equals the table's epoch, tokens come from the table (a key missing from it is read from the
shared cache and added); when it differs, the table is replaced by an empty one for the new
epoch. Outside a request step every lookup reads the shared cache, as before.

Why this is as correct as reading every token each time:

- A step that starts after a write is complete sees it. The writer wrote the subject's token
  before the epoch, so the epoch the step reads is the writer's or a later one, written after
  the subject's token. Every token in the table for that epoch was read from the shared cache
  after some thread read that epoch (a random epoch is written once, so every read of it
  follows its write), hence after the subject's write: it is the new token or a newer one.
- Storing a token read after the step's epoch read is safe for the same reason: it is at least
  as new as every write whose epoch write preceded that epoch. It is stored only while the
  process's table still belongs to the step's epoch, so a thread that read an older epoch
  cannot slip its token into the table of a newer one (whose readers must see newer writes).
- A write made after the step read the epoch may go unseen until the step ends; the next step
  reads the new epoch. A write inside the step is seen by the step's later lookups.
- Eviction only causes reloads: a vanished epoch is recreated with a new random value, which
  matches no table; a vanished subject token is recreated with a new random value, which
  matches no cached value. Neither can bring back an old token.

When the shared cache is unavailable (Redis down or stalled), the database stays the source of
truth and every process keeps serving. The cache has a circuit of its own: an operation that
fails (connection refused, socket timeout; settings bound both) marks it unavailable, and for
SHARED_CACHE_RETRY_SECONDS no operation tries it again (one thread then probes). Meanwhile a
token lookup answers a local token that changes every SHARED_CACHE_FALLBACK_TTL_SECONDS, so a
per-process value lives at most that long and is reloaded from the database: the extra cost is
one reload per cached subject per interval and process. Such tokens never equal a shared one,
so nothing cached during the outage survives it. A write (`generation_write`) cannot tell the
other processes, so it raises SharedCacheUnavailable (a 503 the caller can retry) and the
change, made in the same transaction, is not committed; a write deferred to a commit that has
already happened is kept and written when the cache is back.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache as shared_cache
from django.db import transaction

from core.errors import ApplicationError
from core.metrics import SHARED_CACHE_AVAILABLE, SHARED_CACHE_FAILURES

T = TypeVar("T")
logger = logging.getLogger("core.cache")

EPOCH_KEY = "generation-cache:epoch"
# The table holds one short string per subject; beyond this it starts again (only reloads).
MAX_TABLE_ENTRIES = 100_000


@dataclass
class _Table:
    epoch: str
    tokens: dict[str, str] = field(default_factory=dict)


_table: _Table | None = None  # replaced, and filled, under _table_lock; read without it
_table_lock = threading.Lock()
_step = threading.local()


class SharedCacheUnavailable(ApplicationError):
    status_code = 503
    error_type = "api_error"
    default_code = "shared_cache_unavailable"


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    """What a shared cache raises when it cannot answer (not a bug in what was asked)."""
    errors: tuple[type[BaseException], ...] = (OSError, sqlite3.OperationalError)
    try:
        # Imported here: redis-py is optional (needed only with a Redis cache).
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError  # optional, as above
    except ImportError:  # redis-py is only needed with a Redis cache
        return errors
    return (*errors, RedisConnectionError, RedisTimeoutError)


@dataclass
class _Health:
    """The shared cache's own circuit (see the module docstring)."""

    errors: tuple[type[BaseException], ...] = field(default_factory=_unavailable_errors)
    down_since: float | None = None  # wall time of the outage's first failure; None while available
    retry_at: float = 0.0  # monotonic: no operation tries the cache before this
    is_probing: bool = False  # one thread tries the cache again; the others keep the fallback
    last_error: str = ""
    pending_writes: set[str] = field(default_factory=set)  # written when the cache is back
    lock: threading.Lock = field(default_factory=threading.Lock)


_health = _Health()


def _unavailable() -> SharedCacheUnavailable:
    return SharedCacheUnavailable(
        "The shared cache is unavailable, so the change cannot reach the other processes; "
        "nothing was changed. Try again in a few seconds."
    )


def _may_try() -> bool:
    if _health.down_since is None:
        return True
    with _health.lock:
        if _health.is_probing or time.monotonic() < _health.retry_at:
            return False
        _health.is_probing = True
        return True


def _mark_down(error: BaseException) -> None:
    SHARED_CACHE_FAILURES.inc()
    SHARED_CACHE_AVAILABLE.set(0)
    with _health.lock:
        first = _health.down_since is None
        if first:
            _health.down_since = time.time()
        _health.retry_at = time.monotonic() + settings.SHARED_CACHE_RETRY_SECONDS
        _health.is_probing = False
        _health.last_error = f"{type(error).__name__}: {error}"
    if first:
        logger.warning(
            "The shared cache is unavailable (%s); serving from the database until it is back.", _health.last_error
        )


def _mark_up() -> None:
    with _health.lock:
        if _health.down_since is None:
            return
        outage = time.time() - _health.down_since
        _health.down_since = None
        _health.is_probing = False
        pending, _health.pending_writes = _health.pending_writes, set()
    SHARED_CACHE_AVAILABLE.set(1)
    logger.warning("The shared cache is available again after %.1f s.", outage)
    for key in sorted(pending):
        _defer_failed_write(key)


def shared(operation: Callable[[], T]) -> T:
    """One shared-cache operation through the cache's circuit: SharedCacheUnavailable, at once
    and with no round trip while the cache is known to be down."""
    if not _may_try():
        raise _unavailable()
    try:
        result = operation()
    except _health.errors as error:
        _mark_down(error)
        raise _unavailable() from error
    except BaseException:
        if _health.down_since is not None:
            _mark_up()  # the cache answered (the operation itself failed)
        raise
    if _health.down_since is not None:
        _mark_up()
    return result


def shared_cache_state() -> tuple[bool, str]:
    """(available, reason) for /readyz: one probe, unless the circuit says the cache is down."""
    try:
        shared(lambda: shared_cache.get(EPOCH_KEY))
    except SharedCacheUnavailable:
        down_since = _health.down_since
        since = f" for {time.time() - down_since:.0f} s" if down_since is not None else ""
        return False, f"unavailable{since} ({_health.last_error}); serving from the database"
    return True, "ok"


def _fallback_token() -> str:
    """A token nobody stores in the shared cache, the same for SHARED_CACHE_FALLBACK_TTL_SECONDS."""
    return f"unavailable:{int(time.monotonic() // settings.SHARED_CACHE_FALLBACK_TTL_SECONDS)}"


@contextmanager
def request_step() -> Iterator[None]:
    """Within one step of a request (one thread), token lookups cost one shared-cache read
    in steady state: the epoch, read on the first lookup. Each token is seen at most once
    per step, so the step keeps one consistent view."""
    _step.tokens = {}
    _step.table = None
    _step.epoch_read = False
    try:
        yield
    finally:
        _step.tokens = None
        _step.table = None


def _read_or_create(key: str) -> str | None:
    token = shared(lambda: shared_cache.get(key))
    if token is None:
        shared(lambda: shared_cache.add(key, uuid.uuid4().hex, timeout=None))
        token = shared(lambda: shared_cache.get(key))
    return None if token is None else str(token)


def _step_table() -> _Table | None:
    """The table for the epoch this step read (read on the first call), or None when the
    epoch could not be established (then every token is read individually)."""
    if _step.epoch_read:
        known: _Table | None = _step.table
        return known
    global _table
    _step.epoch_read = True
    try:
        epoch = _read_or_create(EPOCH_KEY)
    except SharedCacheUnavailable:
        return None
    if epoch is None:
        return None
    with _table_lock:
        if _table is None or _table.epoch != epoch:
            _table = _Table(epoch=epoch)
        _step.table = _table
    return _table


def generation_token(key: str) -> str:
    """The current token under `key` in the shared cache (made on first use)."""
    memo: dict[str, str] | None = getattr(_step, "tokens", None)
    if memo is None:
        try:
            return _read_or_create(key) or uuid.uuid4().hex  # None: a token nobody holds, a miss
        except SharedCacheUnavailable:
            return _fallback_token()
    if key in memo:
        return memo[key]
    table = _step_table()
    token = table.tokens.get(key) if table is not None else None
    if token is None:
        try:
            token = _read_or_create(key)
        except SharedCacheUnavailable:
            token = _fallback_token()
            table = None  # never stored in the table: it is no shared token
        if token is None:
            token = uuid.uuid4().hex  # a token nobody holds: a miss, never stored
        elif table is not None:
            with _table_lock:
                # Only while the process's table is still this step's epoch's (see the docstring).
                if _table is table:
                    if len(table.tokens) >= MAX_TABLE_ENTRIES:
                        table.tokens.clear()
                    table.tokens[key] = token
    memo[key] = token
    return token


def generation_write(key: str) -> None:
    """A new token under `key`: every process's values cached under the old one are stale.
    The epoch is written after the token (the order the module docstring relies on)."""
    token = uuid.uuid4().hex
    shared(lambda: shared_cache.set(key, token, timeout=None))
    shared(lambda: shared_cache.set(EPOCH_KEY, uuid.uuid4().hex, timeout=None))
    memo: dict[str, str] | None = getattr(_step, "tokens", None)
    if memo is not None:
        memo[key] = token


def generation_bump_key(key: str) -> None:
    """Invalidate now, and again when the transaction commits (another process could reload
    between the first write and the commit, and cache the old value under the new token)."""
    generation_write(key)
    transaction.on_commit(lambda: _defer_failed_write(key))


def _defer_failed_write(key: str) -> None:
    """A write after the change committed: when the cache is down, it is made when it is back."""
    try:
        generation_write(key)
    except SharedCacheUnavailable:
        with _health.lock:
            _health.pending_writes.add(key)
        logger.warning("The shared cache is unavailable; the invalidation of %s is written when it is back.", key)


class GenerationCache:
    def __init__(self, namespace: str, *, max_entries: int = 10_000) -> None:
        self.namespace = namespace
        self.max_entries = max_entries
        self._entries: dict[tuple[Any, ...], tuple[str, Any]] = {}
        self._lock = threading.Lock()

    def _generation_key(self, subject: Hashable) -> str:
        # A tuple subject as "a:b", not its repr: cache keys without spaces or quotes.
        part = ":".join(str(item) for item in subject) if isinstance(subject, tuple) else str(subject)
        return f"{self.namespace}:generation:{part}"

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
