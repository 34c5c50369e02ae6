"""Prometheus metrics. With PROMETHEUS_MULTIPROC_DIR set (several server processes),
samples are shared through files and aggregated on scrape."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
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


def render_latest() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(DEFAULT_REGISTRY), CONTENT_TYPE_LATEST
