"""Shared-cache backends: Redis (production) and one SQLite file (the embedded default).

RedisCache is Django's Redis cache backend, keeping one redis-py client per connection pool.

Django's client builds a new `redis.Redis` object for every cache operation; building one
costs about as much CPU as the round trip itself (0.08 ms against 0.07 ms for a GET,
measured on this machine kind). redis-py clients are thread-safe over their connection
pool, and the pool itself handles a fork, so one client per pool is enough.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.cache.backends import redis as django_redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

# SQLiteCache: a writer waits this long for another process's write lock (writes take microseconds).
BUSY_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_ENTRIES = 100_000
CULL_EVERY = 1_000  # writes of one process between two culls
_CHUNK = 500  # keys per SELECT ... IN (...): well under SQLite's parameter limit
_SELECT = "SELECT value FROM cache_entry WHERE key = ? AND (expires IS NULL OR expires > ?)"
_UPSERT = (
    "INSERT INTO cache_entry (key, value, expires) VALUES (?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires"
)


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # Django's own attributes (not in its type stubs): the pool for `write`, the redis-py class.
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))  # type: ignore[attr-defined]
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient


class SQLiteCache(BaseCache):
    """Django's cache API on one SQLite file: the embedded default's shared cache.

    Every process on the machine (web server, Celery worker and beat, `manage.py` commands)
    opens the same file, so a generation token written by `prompts_sync` is read by the web
    server's next request step, as it would be from Redis. Chosen over Django's file-based
    cache because `add` and `incr` are single SQL statements, atomic across processes (the
    circuit breaker's one probe and its failure count rely on that), and because a read is a
    primary-key lookup on an open connection rather than an open/read/close of a file
    (figures: `bench/shared_cache_bench.py`, recorded in `bench/README.md`).

    WAL journal: readers never wait for a writer. `synchronous=NORMAL`: a commit does not
    fsync (a cache may lose its last writes in a power cut; every value here can be reloaded,
    and a lost generation token only causes reloads). One connection per thread and process
    (a connection must not cross a fork: Celery's prefork pool forks after settings load).
    Strings and integers are stored as SQLite text and integers (no pickling on the hot path;
    `incr` is one UPDATE); other values are pickled, as in Django's own backends.
    """

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        options = params.get("OPTIONS") or {}
        params = {**params, "OPTIONS": {**options}}
        params["OPTIONS"].setdefault("MAX_ENTRIES", DEFAULT_MAX_ENTRIES)
        super().__init__(params)
        self._path = location
        self._local = threading.local()
        self._writes = 0

    # Connection ---------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        pid = os.getpid()
        connection: sqlite3.Connection | None = getattr(local, "connection", None)
        if connection is None or local.pid != pid:
            connection = self._connect()
            local.connection, local.pid = connection, pid
        return connection

    def _connect(self) -> sqlite3.Connection:
        Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA mmap_size=67108864")  # reads through the page map: fewer syscalls
        connection.execute(
            "CREATE TABLE IF NOT EXISTS cache_entry (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL)"
            " WITHOUT ROWID"
        )
        return connection

    # Values -------------------------------------------------------------------------------

    def _key(self, key: Any, *, version: int | None) -> str:
        # No validate_key: its warnings are about memcached's key rules (length, spaces), which
        # SQLite does not have, and it cost about a third of a read.
        return str(self.make_key(key, version=version))

    @staticmethod
    def _encode(value: Any) -> int | str | bytes:
        if type(value) is str or (type(value) is int and -(2**63) <= value < 2**63):
            return value  # stored as SQLite TEXT / INTEGER (incr adds in SQL); bytes are pickles
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def _decode(stored: int | str | bytes) -> Any:
        return pickle.loads(stored) if isinstance(stored, bytes) else stored  # noqa: S301 - our own file, as Django's backends

    # Reads --------------------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self._key(key, version=version)
        row = self._connection().execute(_SELECT, (key, time.time())).fetchone()
        return default if row is None else self._decode(row[0])

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        by_key = {self._key(key, version=version): key for key in keys}
        found: dict[Any, Any] = {}
        connection, now, names = self._connection(), time.time(), list(by_key)
        for start in range(0, len(names), _CHUNK):
            chunk = names[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = connection.execute(
                f"SELECT key, value FROM cache_entry WHERE key IN ({marks}) AND (expires IS NULL OR expires > ?)",  # noqa: S608 - only placeholders
                (*chunk, now),
            )
            for name, stored in rows:
                found[by_key[name]] = self._decode(stored)
        return found

    def has_key(self, key: Any, version: int | None = None) -> bool:
        key = self._key(key, version=version)
        return self._connection().execute(_SELECT, (key, time.time())).fetchone() is not None

    # Writes -------------------------------------------------------------------------------

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        key = self._key(key, version=version)
        self._connection().execute(_UPSERT, (key, self._encode(value), self.get_backend_timeout(timeout)))
        self._wrote(1)

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> list[Any]:
        expires = self.get_backend_timeout(timeout)
        rows = [(self._key(key, version=version), self._encode(value), expires) for key, value in data.items()]
        with self._transaction() as connection:
            connection.executemany(_UPSERT, rows)
        self._wrote(len(rows))
        return []

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Store only when the key is absent or expired: one statement, atomic across processes."""
        key = self._key(key, version=version)
        cursor = self._connection().execute(
            _UPSERT + " WHERE cache_entry.expires IS NOT NULL AND cache_entry.expires <= ?",
            (key, self._encode(value), self.get_backend_timeout(timeout), time.time()),
        )
        self._wrote(1)
        return cursor.rowcount == 1

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        key = self._key(key, version=version)
        cursor = self._connection().execute(
            "UPDATE cache_entry SET expires = ? WHERE key = ? AND (expires IS NULL OR expires > ?)",
            (self.get_backend_timeout(timeout), key, time.time()),
        )
        return cursor.rowcount == 1

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        """Atomic for integers (one UPDATE); other numbers are read and written in one write transaction."""
        key = self._key(key, version=version)
        connection = self._connection()
        row = connection.execute(
            "UPDATE cache_entry SET value = value + ? WHERE key = ? AND typeof(value) = 'integer'"
            " AND (expires IS NULL OR expires > ?) RETURNING value",
            (delta, key, time.time()),
        ).fetchone()
        if row is not None:
            return row[0]
        with self._transaction() as connection:
            found = connection.execute(_SELECT, (key, time.time())).fetchone()
            if found is None:
                raise ValueError(f"Key '{key}' not found")
            value = self._decode(found[0]) + delta
            connection.execute("UPDATE cache_entry SET value = ? WHERE key = ?", (self._encode(value), key))
        return value

    def delete(self, key: Any, version: int | None = None) -> bool:
        key = self._key(key, version=version)
        return self._connection().execute("DELETE FROM cache_entry WHERE key = ?", (key,)).rowcount == 1

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        names = [(self._key(key, version=version),) for key in keys]
        with self._transaction() as connection:
            connection.executemany("DELETE FROM cache_entry WHERE key = ?", names)

    def clear(self) -> None:
        self._connection().execute("DELETE FROM cache_entry")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _wrote(self, count: int) -> None:
        """Every CULL_EVERY writes of this process: drop expired entries, then, above
        MAX_ENTRIES, the 1/CULL_FREQUENCY that expire soonest (entries without expiry last)."""
        self._writes += count
        if self._writes < CULL_EVERY:
            return
        self._writes = 0
        with self._transaction() as connection:
            connection.execute("DELETE FROM cache_entry WHERE expires <= ?", (time.time(),))
            (count_now,) = connection.execute("SELECT COUNT(*) FROM cache_entry").fetchone()
            if count_now > self._max_entries:
                excess = count_now // self._cull_frequency if self._cull_frequency else count_now
                connection.execute(
                    "DELETE FROM cache_entry WHERE key IN (SELECT key FROM cache_entry"
                    " ORDER BY expires IS NULL, expires LIMIT ?)",
                    (excess,),
                )
