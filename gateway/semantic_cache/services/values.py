"""The values the cache's services exchange with the gateway and with each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from gateway.semantic_cache.models import DEFAULT_MAX_ENTRIES, DEFAULT_THRESHOLD, DEFAULT_TTL_SECONDS
from gateway.semantic_cache.types import CacheMode


@dataclass(frozen=True)
class CacheScope:
    application_id: int
    team_id: int
    prompt_version_id: int | None
    model: str
    clearance: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CacheHit:
    entry_id: str
    similarity: float  # 1.0 for an exact match
    kind: str  # "exact" | "semantic"
    completion: dict[str, Any]
    cost_saved_usd: Decimal


@dataclass(frozen=True)
class CacheLookup:
    mode: str  # off | shadow | on
    hit: CacheHit | None = None
    embedding: np.ndarray | None = None


@dataclass(frozen=True)
class CacheConfig:
    """One application's cache settings, as every process caches them."""

    mode: str  # a CacheMode value
    threshold: float
    ttl_seconds: int
    max_entries: int
    cache_nonzero_temperature: bool


DEFAULT_CONFIG = CacheConfig(
    mode=CacheMode.OFF,
    threshold=DEFAULT_THRESHOLD,
    ttl_seconds=DEFAULT_TTL_SECONDS,
    max_entries=DEFAULT_MAX_ENTRIES,
    cache_nonzero_temperature=False,
)


@dataclass(frozen=True)
class CacheSettingsSummary:
    """What another app may know of an application's cache: its mode and whether it serves hits."""

    mode: str  # a CacheMode value
    is_on: bool  # mode "on": hits are served (shadow mode only records them)
