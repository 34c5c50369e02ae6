"""A circuit breaker per provider, its state in Django's shared cache (Redis in production)
so that every web process sees the same state.

Closed: calls flow; failures are counted in a sliding window. Open: after `threshold`
failures within `window` seconds, calls skip the provider for `cooldown` seconds. Half-open:
after the cooldown one probe is let through (an atomic `add`); its success closes the
breaker, its failure opens it again.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache


def _keys(provider_id: int) -> tuple[str, str, str]:
    prefix = f"gateway:breaker:{provider_id}"
    return f"{prefix}:failures", f"{prefix}:open_until", f"{prefix}:probe"


def states(provider_ids: list[int]) -> dict[int, float | None]:
    """open_until per provider (None when closed), in one cache round trip."""
    keys = {_keys(provider_id)[1]: provider_id for provider_id in provider_ids}
    found = cache.get_many(list(keys))
    return {provider_id: found.get(key) for key, provider_id in keys.items()}


def allow(provider_id: int, open_until: float | None) -> bool:
    if open_until is None:
        return True
    if time.time() < open_until:
        return False
    # Half-open: let exactly one probe through until it reports.
    return bool(cache.add(_keys(provider_id)[2], 1, timeout=int(settings.GATEWAY_BREAKER_COOLDOWN_SECONDS) + 1))


def record_success(provider_id: int, *, was_open: bool) -> None:
    if was_open:
        cache.delete_many(list(_keys(provider_id)))


def record_failure(provider_id: int) -> bool:
    """Count a failure; open the breaker when the threshold is reached. True when it opened."""
    failures_key, open_key, probe_key = _keys(provider_id)
    window = int(settings.GATEWAY_BREAKER_WINDOW_SECONDS)
    if cache.add(failures_key, 1, timeout=window):
        failures = 1
    else:
        try:
            failures = cache.incr(failures_key)
        except ValueError:  # expired between add and incr
            cache.add(failures_key, 1, timeout=window)
            failures = 1
    probing = cache.get(probe_key) is not None
    if failures >= settings.GATEWAY_BREAKER_THRESHOLD or probing:
        cooldown = settings.GATEWAY_BREAKER_COOLDOWN_SECONDS
        cache.set(open_key, time.time() + cooldown, timeout=int(cooldown * 10) + 60)
        cache.delete_many([failures_key, probe_key])
        return True
    return False
