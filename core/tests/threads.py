"""Running test code in several threads at once, for races."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable


def run_at_once(calls: Iterable[Callable[[], object]], *, timeout: float | None = None) -> None:
    """Start one thread per call, then wait for every one (each at most `timeout` seconds)."""
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
