"""A circuit breaker per provider, its state in Django's shared cache (Redis in production)
so that every web process sees the same state.

Closed: calls flow; failures are counted in a sliding window. Open: after `threshold`
failures within `window` seconds, calls skip the provider for `cooldown` seconds. Half-open:
after the cooldown one probe is let through (an atomic `add`); its success closes the
breaker, its failure opens it again.

Reading the state costs no round trip in steady state: each process keeps the open_until
values it read under one generation token for all breakers (core.generation_cache,
whose token lookups inside a request step cost one read of the epoch). Opening and closing
write open_until, then the token, so the next request step of every process reloads. A
past open_until is read again on every call (the breaker is half-open, or its key expired
on its own without a token write), as every call did before.

Every function here may wait on the shared cache, so the gateway calls them from its thread
pool, never on the event loop (gateway.upstream). While the shared cache is unavailable the
breakers fail open: every breaker reads as closed and failures are not counted (providers'
own errors are still retried and fall back), as with no breaker at all.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.core.cache import cache

from core.generation_cache import SharedCacheUnavailable, generation_token, generation_write, shared

_GENERATION_KEY = "gateway:breaker:generation"

_lock = threading.Lock()
_known: tuple[str, dict[int, float | None]] = ("", {})  # (token, open_until per provider), replaced whole


def _keys(provider_id: int) -> tuple[str, str, str]:
    prefix = f"gateway:breaker:{provider_id}"
    return f"{prefix}:failures", f"{prefix}:open_until", f"{prefix}:probe"


def _is_settled(open_until: float | None, now: float) -> bool:
    return open_until is None or open_until > now


def states(provider_ids: list[int]) -> dict[int, float | None]:
    """open_until per provider (None when closed); a shared-cache round trip only after a
    change, or while a breaker is half-open."""
    global _known
    token = generation_token(_GENERATION_KEY)  # before the states: never store old states under a new token
    known_token, known = _known
    if known_token != token:
        known = {}
    now = time.time()
    missing = [
        provider_id
        for provider_id in provider_ids
        if provider_id not in known or not _is_settled(known[provider_id], now)
    ]
    if missing:
        keys = {_keys(provider_id)[1]: provider_id for provider_id in missing}
        try:
            found = shared(lambda: cache.get_many(list(keys)))
        except SharedCacheUnavailable:
            found = {}  # closed: fail open
        loaded = {provider_id: found.get(key) for key, provider_id in keys.items()}
        known = {**known, **loaded}
        with _lock:
            current_token, current = _known
            _known = (token, {**current, **loaded} if current_token == token else known)
    return {provider_id: known[provider_id] for provider_id in provider_ids}


def claim_probe(provider_id: int) -> bool:
    """The breaker is half-open (its open_until passed): let exactly one probe through until it reports."""
    probe_key, timeout = _keys(provider_id)[2], int(settings.GATEWAY_BREAKER_COOLDOWN_SECONDS) + 1
    try:
        return bool(shared(lambda: cache.add(probe_key, 1, timeout=timeout)))
    except SharedCacheUnavailable:
        return True


def record_success(provider_id: int) -> None:
    """A call went through while the breaker was not closed: close it (a success on a closed
    breaker needs no bookkeeping)."""
    try:
        shared(lambda: cache.delete_many(list(_keys(provider_id))))
        generation_write(_GENERATION_KEY)
    except SharedCacheUnavailable:
        pass  # the breaker's key expires on its own (its timeout bounds it)


def record_failure(provider_id: int) -> bool:
    """Count a failure; open the breaker when the threshold is reached. True when it opened."""
    try:
        return _record_failure(provider_id)
    except SharedCacheUnavailable:
        return False  # fail open: no failure counts while the shared cache is unavailable


def _record_failure(provider_id: int) -> bool:
    failures_key, open_key, probe_key = _keys(provider_id)
    window = int(settings.GATEWAY_BREAKER_WINDOW_SECONDS)
    if shared(lambda: cache.add(failures_key, 1, timeout=window)):
        failures = 1
    else:
        try:
            failures = shared(lambda: cache.incr(failures_key))
        except ValueError:  # expired between add and incr
            shared(lambda: cache.add(failures_key, 1, timeout=window))
            failures = 1
    probing = shared(lambda: cache.get(probe_key)) is not None
    if failures >= settings.GATEWAY_BREAKER_THRESHOLD or probing:
        cooldown = settings.GATEWAY_BREAKER_COOLDOWN_SECONDS
        shared(lambda: cache.set(open_key, time.time() + cooldown, timeout=int(cooldown * 10) + 60))
        shared(lambda: cache.delete_many([failures_key, probe_key]))
        generation_write(_GENERATION_KEY)
        return True
    return False
