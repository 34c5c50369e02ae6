"""The hot path's lookup: the entry to serve (mode "on") or to record as a shadow hit (mode "shadow").

- `lookup` never raises: a failing backend (database, shared cache, embedding) is logged,
  counted in `controlplane_semantic_cache_lookups_total{result="error"}` and reported as a miss.
- A hit is served only if it is the same scope (application, prompt version, model,
  normalised parameters), the same conversation before the last message, an exact or
  similar (>= threshold) last user message, made under a clearance at most the caller's,
  not expired and not flagged. Candidates come from an in-process index (index.py) and are
  re-read from the database before they are returned, so a purged, flagged or expired entry
  is never served whatever the index holds.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from django.utils import timezone
from prometheus_client import Counter

from core import embeddings
from gateway.semantic_cache.guard import compatible
from gateway.semantic_cache.models import CacheEntry
from gateway.semantic_cache.services.normalize import RequestKeys, request_keys, temperature_allowed
from gateway.semantic_cache.services.state import CacheState, process_state
from gateway.semantic_cache.services.values import CacheHit, CacheLookup, CacheScope
from gateway.semantic_cache.services.writes import UsageJob, writer
from gateway.semantic_cache.types import CacheMode

logger = logging.getLogger(__name__)

LOOKUPS = Counter(
    "controlplane_semantic_cache_lookups_total",
    "Semantic cache lookups by result (off, skipped, miss, exact, semantic, shadow_exact, shadow_semantic, error).",
    ["result"],
)


def lookup(*, scope: CacheScope, messages: list[dict[str, Any]]) -> CacheLookup:
    """The entry to serve (mode "on") or to record as a shadow hit (mode "shadow"), if any."""
    return lookup_in(state=process_state(), scope=scope, messages=messages)


def lookup_in(*, state: CacheState, scope: CacheScope, messages: list[dict[str, Any]]) -> CacheLookup:
    try:
        token, config = state.config(scope.application_id)
    except Exception:
        logger.exception("semantic cache settings unavailable; treated as a miss")
        LOOKUPS.labels(result="error").inc()
        return CacheLookup(mode=CacheMode.OFF)
    if config.mode == CacheMode.OFF:
        LOOKUPS.labels(result="off").inc()
        return CacheLookup(mode=CacheMode.OFF)
    embedding: np.ndarray | None = None
    try:
        if not temperature_allowed(params=scope.params, config=config):
            LOOKUPS.labels(result="skipped").inc()
            return CacheLookup(mode=config.mode)
        keys = request_keys(scope=scope, messages=messages)
        index = state.registry.scope(scope_hash=keys.scope_hash, generation=token)
        now = time.time()
        exact = index.exact(request_hash=keys.request_hash, clearance=scope.clearance, now=now)
        hit = _verified(state, scope=scope, keys=keys, candidates=[(entry_id, 1.0) for entry_id in exact])
        if hit is None and keys.semantic_text is not None:
            embedding = embeddings.embed([keys.semantic_text])[0]
            candidates = index.search(
                vector=embedding,
                context_hash=keys.context_hash,
                clearance=scope.clearance,
                threshold=config.threshold,
                now=now,
            )
            hit = _verified(state, scope=scope, keys=keys, candidates=candidates)
    except Exception:
        logger.exception(
            "semantic cache lookup failed; treated as a miss", extra={"application_id": scope.application_id}
        )
        LOOKUPS.labels(result="error").inc()
        return CacheLookup(mode=config.mode, embedding=embedding)
    if hit is None:
        LOOKUPS.labels(result="miss").inc()
        return CacheLookup(mode=config.mode, embedding=embedding)
    is_shadow = config.mode == CacheMode.SHADOW
    LOOKUPS.labels(result=f"shadow_{hit.kind}" if is_shadow else hit.kind).inc()
    writer().submit(UsageJob(entry_id=hit.entry_id, is_shadow=is_shadow))
    return CacheLookup(mode=config.mode, hit=hit, embedding=embedding)


def _verified(
    state: CacheState, *, scope: CacheScope, keys: RequestKeys, candidates: list[tuple[str, float]]
) -> CacheHit | None:
    """The best candidate the database still holds as servable to this caller."""
    if not candidates:
        return None
    rows = {
        str(row["id"]): row
        for row in CacheEntry.objects.filter(
            id__in=[entry_id for entry_id, _ in candidates],
            scope_hash=keys.scope_hash,
            application_id=scope.application_id,
            clearance__lte=scope.clearance,
            classification__lte=scope.clearance,
            flagged_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).values("id", "completion", "cost_usd", "request_hash", "query_text")
    }
    for entry_id, similarity in candidates:
        row = rows.get(entry_id)
        if row is None:
            state.registry.remove(entry_id)
            continue
        is_exact = row["request_hash"] == keys.request_hash
        if not is_exact and not compatible(keys.semantic_text or "", row["query_text"]):
            continue
        return CacheHit(
            entry_id=entry_id,
            similarity=1.0 if is_exact else similarity,
            kind="exact" if is_exact else "semantic",
            completion=row["completion"],
            cost_saved_usd=row["cost_usd"],
        )
    return None
