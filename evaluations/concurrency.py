"""A limit on in-flight eval calls per (team, model) across every worker process and machine.

The limit is `limit` numbered slots in the shared cache (Redis in production): a call takes a
free slot with an atomic add (SET NX with an expiry) and deletes it when done. The expiry frees
the slots of a worker killed mid-call after SLOT_TTL_SECONDS (longer than one call may last).
While the shared cache is down the limit is not enforced (each chunk still bounds its own
concurrency): evals slow nobody else down by waiting on it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from django.core.cache import cache

from core.generation_cache import SharedCacheUnavailable, shared

logger = logging.getLogger(__name__)

SLOT_TTL_SECONDS = 180
POLL_SECONDS = 0.05


def _slot_key(scope: str, index: int) -> str:
    return f"evaluations:slot:{scope}:{index}"


def _try_take(scope: str, limit: int, token: str) -> str | None:
    start = random.randrange(limit)  # noqa: S311 - spreads contention over the slots
    for offset in range(limit):
        key = _slot_key(scope, (start + offset) % limit)
        if shared(lambda key=key: cache.add(key, token, timeout=SLOT_TTL_SECONDS)):  # type: ignore[misc]
            return key
    return None


def _release(key: str, token: str) -> None:
    try:
        if shared(lambda: cache.get(key)) == token:
            shared(lambda: cache.delete(key))
    except SharedCacheUnavailable:
        pass  # the slot expires by itself


@asynccontextmanager
async def slot(scope: str, limit: int) -> AsyncIterator[None]:
    """Hold one of `limit` slots of `scope` for the duration of the block."""
    token = uuid.uuid4().hex
    key: str | None = None
    while True:
        try:
            key = await asyncio.to_thread(_try_take, scope, limit, token)
        except SharedCacheUnavailable:
            logger.warning("shared cache unavailable: eval concurrency limit of %s not enforced", scope)
            break
        if key is not None:
            break
        await asyncio.sleep(POLL_SECONDS * (1 + random.random()))  # noqa: S311 - jitter
    try:
        yield
    finally:
        if key is not None:
            await asyncio.to_thread(_release, key, token)
