"""Prometheus metrics. With PROMETHEUS_MULTIPROC_DIR set (several server processes),
samples are shared through files and aggregated on scrape."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

HTTP_REQUESTS = Counter(
    "controlplane_http_requests_total",
    "HTTP requests handled, by route, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "controlplane_http_request_duration_seconds",
    "Time spent handling HTTP requests, by route and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# The shared cache (Redis) as each process last found it; while it is 0 the process serves
# from the database (core.generation_cache). The lowest value of the live processes.
SHARED_CACHE_AVAILABLE = Gauge(
    "controlplane_shared_cache_available",
    "1 while the shared cache answers, 0 while this process serves without it (degraded).",
    multiprocess_mode="livemin",
)
SHARED_CACHE_AVAILABLE.set(1)
SHARED_CACHE_FAILURES = Counter(
    "controlplane_shared_cache_failures_total",
    "Shared-cache operations that failed (connection refused, timeout), each opening its circuit.",
)


def render_latest() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(DEFAULT_REGISTRY), CONTENT_TYPE_LATEST
