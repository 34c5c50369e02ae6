"""The semantic cache: lookups and fills for the gateway, and the writes behind the API and UI.

One module per job:
- `values`: what the gateway passes in and gets back (`CacheScope`, `CacheLookup`, `CacheHit`)
  and an application's settings as every process caches them (`CacheConfig`).
- `normalize`: a request's scope, conversation and request hashes and its semantic text.
- `state`: per-process settings and scope indexes, invalidated by a generation token.
- `lookups`: `lookup`, the hot path (never raises; see its docstring for what is served).
- `writes`: `store` enqueues; a background thread embeds and writes (`CacheWriter`).
- `invalidation`: flag one entry, invalidate a prompt's entries, purge an application's.
- `settings`: the audited settings write and the summary other apps read.
- `shadow`: reviewers' verdicts on shadow hits.

Temperature: a request without `temperature` runs at the provider's default, which is 1.0
for OpenAI-compatible APIs, so it counts as nonzero. Such requests are looked up and stored
only when the application sets `cache_nonzero_temperature`.

This module re-exports what callers outside the package use; tests that patch an internal
patch it in the module that defines it.
"""

from __future__ import annotations

from gateway.semantic_cache.services.invalidation import entries_invalidate_for_prompt, entries_purge, entry_flag
from gateway.semantic_cache.services.lookups import lookup, lookup_in
from gateway.semantic_cache.services.normalize import request_keys
from gateway.semantic_cache.services.settings import cache_settings_set, cache_settings_summary
from gateway.semantic_cache.services.shadow import shadow_review_mark
from gateway.semantic_cache.services.state import (
    CacheState,
    config_load,
    forget_all,
    generation_bump,
    process_state,
)
from gateway.semantic_cache.services.values import (
    DEFAULT_CONFIG,
    CacheConfig,
    CacheHit,
    CacheLookup,
    CacheScope,
    CacheSettingsSummary,
)
from gateway.semantic_cache.services.writes import CacheWriter, store, writer

__all__ = [
    "DEFAULT_CONFIG",
    "CacheConfig",
    "CacheHit",
    "CacheLookup",
    "CacheScope",
    "CacheSettingsSummary",
    "CacheState",
    "CacheWriter",
    "cache_settings_set",
    "cache_settings_summary",
    "config_load",
    "entries_invalidate_for_prompt",
    "entries_purge",
    "entry_flag",
    "forget_all",
    "generation_bump",
    "lookup",
    "lookup_in",
    "process_state",
    "request_keys",
    "shadow_review_mark",
    "store",
    "writer",
]
