"""Per-process state: each application's settings and the scope indexes, invalidated by a
generation token in the shared cache.

Mode "off" costs one shared-cache read (the application's generation token) and a dict lookup:
settings are cached per process and reloaded when the token changes.
"""

from __future__ import annotations

import threading
from collections.abc import Container
from datetime import datetime

import numpy as np
from django.conf import settings
from django.utils import timezone

from core.generation_cache import generation_bump_key, generation_token
from gateway.semantic_cache.index import IndexRegistry, IndexRow
from gateway.semantic_cache.models import CacheEntry, CacheSettings
from gateway.semantic_cache.services.values import DEFAULT_CONFIG, CacheConfig

_GENERATION_PREFIX = "semantic_cache:generation:"


def _generation_key(application_id: int) -> str:
    return f"{_GENERATION_PREFIX}{application_id}"


def generation(application_id: int) -> str:
    return generation_token(_generation_key(application_id))


def generation_bump(application_id: int) -> None:
    """Every process reloads this application's settings and indexes: now and again on commit
    (another process could reload between the first write and the commit)."""

    generation_bump_key(_generation_key(application_id))


def _index_rows(*, scope_hash: str, since: datetime | None, known: Container[str] = ()) -> list[IndexRow]:
    now = timezone.now()
    queryset = CacheEntry.objects.filter(scope_hash=scope_hash, flagged_at__isnull=True, expires_at__gt=now)
    if since is not None:
        # A sync: read the ids first and the embeddings of the new rows only.
        recent = queryset.filter(created_at__gte=since).values_list("id", flat=True)
        new_ids = [entry_id for entry_id in recent if str(entry_id) not in known]
        if not new_ids:
            return []
        queryset = queryset.filter(id__in=new_ids)
    return [
        IndexRow(
            entry_id=str(entry_id),
            request_hash=request_hash,
            context_hash=context_hash,
            clearance=max(clearance, classification),  # the clearance a caller needs to be served it
            expires_at=expires_at.timestamp(),
            created_at=created_at,
            vector=np.frombuffer(bytes(embedding), dtype=np.float32) if embedding is not None else None,
        )
        for (
            entry_id,
            request_hash,
            context_hash,
            clearance,
            classification,
            expires_at,
            created_at,
            embedding,
        ) in queryset.values_list(
            "id", "request_hash", "context_hash", "clearance", "classification", "expires_at", "created_at", "embedding"
        ).iterator(chunk_size=2_000)
    ]


class CacheState:
    """One process's view: cached settings per application and the scope indexes."""

    def __init__(self, *, sync_seconds: float | None = None) -> None:
        self.registry = IndexRegistry(
            load=_index_rows,
            sync_seconds=sync_seconds if sync_seconds is not None else settings.SEMANTIC_CACHE_SYNC_SECONDS,
        )
        self._configs: dict[int, tuple[str, CacheConfig]] = {}

    def config(self, application_id: int) -> tuple[str, CacheConfig]:
        token = generation(application_id)  # read before the database: never cache old under new
        cached = self._configs.get(application_id)
        if cached is not None and cached[0] == token:
            return token, cached[1]
        config = config_load(application_id)
        if len(self._configs) >= 100_000:
            self._configs.clear()
        self._configs[application_id] = (token, config)
        return token, config

    def clear(self) -> None:
        self._configs.clear()
        self.registry.clear()


def config_load(application_id: int) -> CacheConfig:
    row = CacheSettings.objects.filter(application_id=application_id).first()
    if row is None:
        return DEFAULT_CONFIG
    return CacheConfig(
        mode=row.mode,
        threshold=row.threshold,
        ttl_seconds=row.ttl_seconds,
        max_entries=row.max_entries,
        cache_nonzero_temperature=row.cache_nonzero_temperature,
    )


_state: CacheState | None = None
_state_lock = threading.Lock()


def process_state() -> CacheState:
    global _state
    if _state is None:
        with _state_lock:
            if _state is None:
                _state = CacheState()
    return _state


def forget_all() -> None:
    """Drop this process's cached settings and indexes (tests; the database is untouched)."""
    if _state is not None:
        _state.clear()
