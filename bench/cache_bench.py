"""Semantic cache benchmark: precision and hit rate per similarity threshold on a labelled pair
set, the chosen default threshold, and lookup latency at 10,000 and 100,000 entries.

Run: .venv/bin/python bench/cache_bench.py [--iterations 300] [--sizes 10000,100000]

Everything runs through the real services (`store`, `lookup`) on a throwaway SQLite database
(a temporary `CONTROLPLANE_VAR_DIR`, locmem shared cache):
- quality: for each pair of bench/data/cache_pairs.jsonl, the first question is stored in a
  scope of its own and the second is looked up with threshold 0, which reports the best
  entry's similarity (1.0 for an exact match after normalisation). A paraphrase pair at or
  above a threshold is a true positive, a negative pair a false positive. Precision =
  TP / (TP + FP); hit rate = TP / paraphrase pairs (the share of paraphrases served).
- latency: one scope filled with N entries (the pair set's first questions plus random unit
  vectors), then `lookup` for an exact hit (normalise + hash + index + one verifying row read),
  a semantic hit and a semantic miss (both include embedding the question, ~7 ms), and the
  in-memory vector search alone.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VAR_DIR = tempfile.mkdtemp(prefix="cache-bench-")
atexit.register(shutil.rmtree, VAR_DIR, ignore_errors=True)
os.environ["CONTROLPLANE_VAR_DIR"] = VAR_DIR
os.environ["DJANGO_DEBUG"] = "true"
os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"
os.environ["LOG_LEVEL"] = "WARNING"
os.environ["SEMANTIC_CACHE_WRITER"] = "inline"
for variable in ("DATABASE_URL", "CACHE_URL"):
    os.environ.pop(variable, None)

import django  # noqa: E402 - the environment above must be set first

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Application, Clearance, Team  # noqa: E402
from controlplane.embeddings import embed  # noqa: E402
from gateway.semantic_cache import services  # noqa: E402
from gateway.semantic_cache.models import CacheEntry, CacheMode, CacheSettings  # noqa: E402

PAIRS = ROOT / "bench" / "data" / "cache_pairs.jsonl"
THRESHOLDS = [round(0.80 + 0.02 * step, 2) for step in range(10)]
TARGET_PRECISION = 0.95


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(function: Callable[[int], object], iterations: int) -> tuple[float, float]:
    for index in range(min(20, iterations)):
        function(index)
    samples = []
    for index in range(iterations):
        started = time.perf_counter()
        function(index)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), percentile(samples, 0.99)


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are Acme's support agent."}, {"role": "user", "content": text}]


def completion(text: str) -> dict[str, object]:
    return {"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


def setup_application() -> Application:
    call_command("migrate", verbosity=0)
    team = Team.objects.create(name="bench")
    application = Application.objects.create(team=team, name="bench")
    CacheSettings.objects.create(application=application, mode=CacheMode.ON, threshold=0.0, max_entries=1_000_000)
    services.generation_bump(application.id)
    return application


def scope(application: Application, model: str) -> services.CacheScope:
    return services.CacheScope(
        application_id=application.id,
        team_id=application.team_id,
        prompt_version_id=None,
        model=model,
        clearance=Clearance.INTERNAL,
        params={"temperature": 0},
    )


def quality(application: Application) -> float:
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    similarities: list[tuple[str, float]] = []
    for number, pair in enumerate(pairs):
        pair_scope = scope(application, f"pair-{number}")
        services.store(
            scope=pair_scope, messages=messages(pair["first"]), completion=completion("x"), cost_usd=Decimal("0.001")
        )
        result = services.lookup(scope=pair_scope, messages=messages(pair["second"]))
        similarities.append((pair["label"], result.hit.similarity if result.hit else -1.0))
    positives = sum(1 for label, _ in similarities if label == "paraphrase")
    negatives = len(similarities) - positives
    print(f"Pairs: {len(pairs)} ({positives} paraphrases, {negatives} negatives), {PAIRS.relative_to(ROOT)}")
    print()
    print("| threshold | precision | hit rate (recall) | true positives | false positives |")
    print("|---:|---:|---:|---:|---:|")
    chosen = None
    for threshold in THRESHOLDS:
        true_positive = sum(
            1 for label, similarity in similarities if label == "paraphrase" and similarity >= threshold
        )
        false_positive = sum(1 for label, similarity in similarities if label == "negative" and similarity >= threshold)
        precision = true_positive / (true_positive + false_positive) if true_positive + false_positive else 1.0
        hit_rate = true_positive / positives
        print(f"| {threshold:.2f} | {precision:.3f} | {hit_rate:.3f} | {true_positive} | {false_positive} |")
        if chosen is None and precision >= TARGET_PRECISION:
            chosen = (threshold, precision, hit_rate)
    print()
    if chosen is None:
        print(f"No threshold reaches precision {TARGET_PRECISION}.")
        return 1.0
    print(
        f"Default threshold: {chosen[0]:.2f} (lowest with precision >= {TARGET_PRECISION}): "
        f"precision {chosen[1]:.3f}, hit rate {chosen[2]:.3f} on paraphrases."
    )
    by_kind: dict[str, list[int]] = {}
    for pair, (_, similarity) in zip(pairs, similarities, strict=True):
        counts = by_kind.setdefault(f"{pair['label']}/{pair['kind']}", [0, 0])
        counts[0] += similarity >= chosen[0]
        counts[1] += 1
    print(
        "Hits at the default by kind: " + ", ".join(f"{kind} {hit}/{total}" for kind, (hit, total) in by_kind.items())
    )
    return chosen[0]


def latency(application: Application, size: int, iterations: int, threshold: float) -> dict[str, tuple[float, float]]:
    CacheEntry.objects.filter(application=application).delete()
    CacheSettings.objects.filter(application=application).update(threshold=threshold)
    services.generation_bump(application.id)
    services.forget_all()
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    questions = [pair["first"] for pair in pairs if pair["label"] == "paraphrase"]
    paraphrases = [pair["second"] for pair in pairs if pair["label"] == "paraphrase"]
    bench_scope = scope(application, "latency")
    for question in questions:  # real entries, through store()
        services.store(
            scope=bench_scope, messages=messages(question), completion=completion("x"), cost_usd=Decimal("0.001")
        )
    template = CacheEntry.objects.filter(application=application).first()
    assert template is not None
    generator = np.random.default_rng(7)
    # Filler rows are an hour old, as if filled over time: a process re-reads only the ids of
    # rows created in the last SYNC_OVERLAP on each sync (see index.py).
    now = timezone.now() - timedelta(hours=1)
    filler = []
    for index in range(size - len(questions)):
        vector = generator.standard_normal(384).astype(np.float32)
        vector /= np.linalg.norm(vector)
        filler.append(
            CacheEntry(
                team_id=application.team_id,
                application=application,
                model=template.model,
                params=template.params,
                scope_hash=template.scope_hash,
                context_hash=template.context_hash,
                request_hash=f"{index:064x}",
                clearance=Clearance.INTERNAL,
                query_text=f"filler {index}",
                embedding=vector.tobytes(),
                completion=template.completion,
                created_at=now,
                last_used_at=now,
                expires_at=template.expires_at,
            )
        )
    CacheEntry.objects.bulk_create(filler, batch_size=2_000)
    started = time.perf_counter()
    services.lookup(scope=bench_scope, messages=messages("warm up the index"))
    load_ms = (time.perf_counter() - started) * 1000
    state = services.process_state()
    scope_index = state.registry.loaded(template.scope_hash)
    assert scope_index is not None
    assert len(scope_index) == size, (len(scope_index), size)
    query_vectors = embed(paraphrases)
    unrelated = [f"Completely unrelated question number {index} about gardening tools" for index in range(50)]

    def exact(number: int) -> None:
        result = services.lookup(scope=bench_scope, messages=messages(questions[number % len(questions)].upper()))
        assert result.hit is not None
        assert result.hit.kind == "exact"

    def semantic_hit(number: int) -> None:
        services.lookup(scope=bench_scope, messages=messages(paraphrases[number % len(paraphrases)]))

    def semantic_miss(number: int) -> None:
        services.lookup(scope=bench_scope, messages=messages(unrelated[number % len(unrelated)]))

    def search_only(number: int) -> None:
        scope_index.search(
            vector=query_vectors[number % len(query_vectors)],
            context_hash=template.context_hash,
            clearance=Clearance.INTERNAL,
            threshold=threshold,
            now=time.time(),
        )

    results = {
        "exact hit (lookup)": measure(exact, iterations),
        "semantic hit (lookup, incl. embedding)": measure(semantic_hit, iterations),
        "semantic miss (lookup, incl. embedding)": measure(semantic_miss, iterations),
        "vector search only (in memory)": measure(search_only, iterations),
    }
    print(f"  {size:,} entries: index loaded from the database in {load_ms:.0f} ms")
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--sizes", default="10000,100000")
    arguments = parser.parse_args()
    application = setup_application()
    threshold = quality(application)
    embed(["warm up"])
    print()
    sizes = [int(size) for size in arguments.sizes.split(",")]
    table = {size: latency(application, size, arguments.iterations, threshold) for size in sizes}
    print()
    print(f"Lookup latency in process, one scope, threshold {threshold:.2f}, ms (p50 / p99):")
    print()
    print("| | " + " | ".join(f"{size:,} entries" for size in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for name in table[sizes[0]]:
        cells = " | ".join(f"{table[size][name][0]:.3f} / {table[size][name][1]:.3f}" for size in sizes)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
