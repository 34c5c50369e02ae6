"""Latency figures the benchmarks print: median and 99th percentile, in milliseconds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def percentile(samples: list[float], share: float) -> float:
    """The sample below which `share` of the samples fall (nearest rank, no interpolation)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(function: Callable[[int], object], iterations: int, *, warm_up: int) -> tuple[float, float]:
    """Median and p99 in ms of `iterations` calls of `function(index)`, after `warm_up` calls
    (at most `iterations`) that are not measured."""
    for index in range(min(warm_up, iterations)):
        function(index)
    samples = []
    for index in range(iterations):
        started = time.perf_counter()
        function(index)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), percentile(samples, 0.99)
