"""Shared-cache backends for the embedded default: cost of the gateway's hot-path read and
correctness across processes.

Run: .venv/bin/python bench/shared_cache_bench.py [--iterations 20000] [--redis redis://127.0.0.1:6379/9]
     [--diskcache-path DIR]  (a folder holding the `diskcache` package, to compare it too)

For each backend (locmem, the SQLite file `core.cache.SQLiteCache`, Django's
FileBasedCache, optionally diskcache's DjangoCache and Redis), in one process:
- `get`: one read of an existing 32-character token (the epoch read each request step makes);
- `step`: `generation_token` inside `request_step()` as the gateway calls it (epoch read plus
  a token found in the process's table), the whole cost a request step pays;
- `set`: one write of a token (a label move, a price change).
Then across processes: two forked processes each `incr` one counter 500 times (a lost update
shows as a total below 1000) and race to `add` 200 keys (more than 200 successes: two
processes both believed they added the same key). locmem is per process: a second process
never sees the first's writes, so it is listed for the latency baseline only.
Times are the median of 5 rounds, in microseconds per operation.
"""

from __future__ import annotations

import argparse
import atexit
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VAR_DIR = tempfile.mkdtemp(prefix="shared-cache-bench-")
atexit.register(shutil.rmtree, VAR_DIR, ignore_errors=True)

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--iterations", type=int, default=20_000)
parser.add_argument("--redis", default="", help="a Redis URL of your own database number, to compare")
parser.add_argument("--diskcache-path", default="", help="a folder holding the diskcache package, to compare")
arguments = parser.parse_args()

CACHES = {
    "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "bench"},
    "sqlite": {"BACKEND": "core.cache.SQLiteCache", "LOCATION": f"{VAR_DIR}/cache.sqlite3"},
    "filebased": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": f"{VAR_DIR}/filecache",
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    },
}
if arguments.diskcache_path:
    sys.path.insert(0, arguments.diskcache_path)
    CACHES["diskcache"] = {"BACKEND": "diskcache.DjangoCache", "LOCATION": f"{VAR_DIR}/diskcache"}
if arguments.redis:
    CACHES["redis"] = {"BACKEND": "core.cache.RedisCache", "LOCATION": arguments.redis}

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(CACHES={"default": CACHES["locmem"], **CACHES}, USE_TZ=True)
django.setup()

from _meta import print_header  # noqa: E402
from django.core.cache import caches  # noqa: E402

from core import generation_cache  # noqa: E402

ROUNDS = 5


def per_operation(operation: Callable[[], object], iterations: int) -> float:
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(iterations):
            operation()
        rounds.append((time.perf_counter() - started) / iterations * 1e6)
    return statistics.median(rounds)


def hot_path(alias: str, iterations: int) -> tuple[float, float, float]:
    cache = caches[alias]
    cache.clear()
    cache.set("bench:token", "0123456789abcdef0123456789abcdef", timeout=None)
    get = per_operation(lambda: cache.get("bench:token"), iterations)
    generation_cache.shared_cache = cache  # the module's shared cache, pointed at this backend
    generation_cache.generation_write("bench:subject")

    def step() -> None:
        with generation_cache.request_step():
            generation_cache.generation_token("bench:subject")

    step_cost = per_operation(step, iterations)
    set_cost = per_operation(lambda: cache.set("bench:written", "0123456789abcdef0123456789abcdef"), iterations // 10)
    return get, step_cost, set_cost


def _contend(alias: str, start: Any, results: Any) -> None:  # multiprocessing Event and Queue
    cache = caches[alias]
    start.wait()
    for _ in range(500):
        cache.incr("bench:counter")
    added = sum(bool(cache.add(f"bench:add:{number}", os.getpid())) for number in range(200))
    results.put(added)


def across_processes(alias: str) -> tuple[int, int]:
    cache = caches[alias]
    cache.clear()
    cache.set("bench:counter", 0, timeout=None)
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=_contend, args=(alias, start, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    added = results.get(timeout=60) + results.get(timeout=60)
    for worker in workers:
        worker.join()
    return int(cache.get("bench:counter")), added


def main() -> None:
    print_header()
    iterations = arguments.iterations
    print(f"{'backend':<10} {'get us':>8} {'step us':>8} {'set us':>8}  incr total (of 1000)  add wins (of 200)")
    for alias in CACHES:
        get, step, set_cost = hot_path(alias, iterations)
        if alias == "locmem":
            crossing = "per process: a second process never sees a write"
        else:
            total, added = across_processes(alias)
            crossing = f"{total:>20}  {added:>17}"
        print(f"{alias:<10} {get:>8.1f} {step:>8.1f} {set_cost:>8.1f}  {crossing}")


if __name__ == "__main__":
    main()
