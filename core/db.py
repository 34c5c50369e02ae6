"""One unit of work outside Django's request handling (a gateway step, a batch of the call
recorder), with what Django does around a request: drop broken or expired database
connections before and after, and read each generation token at most once (`request_step`).

Django's health check (CONN_HEALTH_CHECKS) pings the database before each unit's first
query. A connection this thread used without error a moment ago (GATEWAY_DB_CHECK_IDLE_SECONDS)
is alive: that round trip is skipped. An error marks the connection, and the next unit checks
or replaces it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import close_old_connections, connections

from core.generation_cache import request_step

_thread = threading.local()


@contextmanager
def work_cycle() -> Iterator[None]:
    close_old_connections()
    if time.monotonic() - getattr(_thread, "last_success", float("-inf")) < settings.GATEWAY_DB_CHECK_IDLE_SECONDS:
        for alias in connections:
            wrapper = connections[alias]
            if wrapper.connection is not None and not wrapper.errors_occurred:
                wrapper.health_check_done = True  # type: ignore[attr-defined] # set by Django, not in its stubs
    try:
        with request_step():
            yield
    finally:
        if not any(connections[alias].errors_occurred for alias in connections):
            _thread.last_success = time.monotonic()
        close_old_connections()
