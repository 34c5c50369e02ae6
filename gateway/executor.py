"""The gateway's one thread pool: every synchronous step of a /v1 request (database, shared
cache, spool) runs in it, off the event loop.

One pool for every request (not a new thread per request context): its threads, and their
database connections, live as long as the process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from functools import partial
from typing import Any

from django.conf import settings

from core.db import work_cycle

_executor: concurrent.futures.ThreadPoolExecutor | None = None


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _executor  # one pool per process, made on first use
    if _executor is None:
        _executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.GATEWAY_THREADS, thread_name_prefix="gateway"
        )
    return _executor


def _in_request_cycle(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    with work_cycle():
        return function(**kwargs)


async def run_sync(function: Callable[..., Any], **kwargs: Any) -> Any:
    """`function(**kwargs)` in the gateway's thread pool, inside one database work cycle."""
    return await asyncio.get_running_loop().run_in_executor(_pool(), partial(_in_request_cycle, function, kwargs))
