"""Routing benchmark: the complexity scorer on the held-out split of bench/data/routing_labelled.csv.

    .venv/bin/python bench/routing_bench.py [--small gpt-4o-mini] [--large gpt-4o]
        [--input-tokens 500] [--output-tokens 300]

For each threshold 0.1..0.9 (score > threshold -> large): accuracy of small-vs-large against the
labels, the share sent to the large tier, and the cost saved against always-large, every query
priced at the seeded price table (costs migration 0002) with the same assumed token counts.
Also the scorer's latency per query (one embedding). The held-out rows are never trained on
(`train_router` reads only split=train). Runs on an in-memory SQLite database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._meta import print_header  # noqa: E402 - needs ROOT on sys.path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings_test")
os.environ["DATABASE_URL"] = "sqlite://:memory:"

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from costs.services import call_cost  # noqa: E402
from gateway import complexity  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(complexity.DEFAULT_DATA_PATH))
    parser.add_argument("--small", default="gpt-4o-mini")
    parser.add_argument("--large", default="gpt-4o")
    parser.add_argument("--input-tokens", type=int, default=500)
    parser.add_argument("--output-tokens", type=int, default=300)
    arguments = parser.parse_args()
    print_header()

    call_command("migrate", verbosity=0)  # the seeded price table
    rows = [row for row in complexity.read_labelled(Path(arguments.data)) if row.split == "test"]
    labels = np.array([row.is_large for row in rows])
    texts = [row.query for row in rows]
    scores = complexity.scorer().scores(texts)
    now = timezone.now()
    small_cost = call_cost(
        team_id=None,  # the shared catalog's prices
        model=arguments.small,
        input_tokens=arguments.input_tokens,
        output_tokens=arguments.output_tokens,
        at=now,
    )
    large_cost = call_cost(
        team_id=None,  # the shared catalog's prices
        model=arguments.large,
        input_tokens=arguments.input_tokens,
        output_tokens=arguments.output_tokens,
        at=now,
    )
    always_large = large_cost * len(rows)

    print(f"held-out queries: {len(rows)} ({int(labels.sum())} labelled large)")
    print(
        f"per query: {arguments.input_tokens} input + {arguments.output_tokens} output tokens; "
        f"{arguments.small} ${small_cost} vs {arguments.large} ${large_cost}"
    )
    print(
        f"{'threshold':>9} {'accuracy':>8} {'to large':>8} {'large recall':>12} {'small kept':>10} {'cost saved':>10}"
    )
    for threshold in [round(0.1 * step, 1) for step in range(1, 10)]:
        to_large = scores > threshold
        accuracy = float((to_large == labels).mean())
        recall = float(to_large[labels].mean())  # hard queries that reached the large model
        kept = float((~to_large[~labels]).mean())  # easy queries kept on the small model
        cost = large_cost * int(to_large.sum()) + small_cost * int((~to_large).sum())
        saved = float((always_large - cost) / always_large)
        print(f"{threshold:>9} {accuracy:>8.3f} {to_large.mean():>8.3f} {recall:>12.3f} {kept:>10.3f} {saved:>10.1%}")

    complexity.score("warm up")
    timings = []
    for text in texts:
        started = time.perf_counter()
        complexity.score(text)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    print(
        f"score() latency per query: p50 {statistics.median(timings):.1f} ms, "
        f"p99 {timings[min(len(timings) - 1, int(len(timings) * 0.99))]:.1f} ms"
    )


if __name__ == "__main__":
    main()
