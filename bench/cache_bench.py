"""Semantic cache benchmark: precision and hit rate per similarity threshold on two labelled pair
sets side by side, and lookup latency at 10,000 and 100,000 entries.

Run: .venv/bin/python bench/cache_bench.py [--iterations 300] [--sizes 10000,100000] [--no-guard]
     .venv/bin/python bench/cache_bench.py --sizes ''      # quality only, about 25 s

Everything runs through the real services (`store`, `lookup`) on a throwaway SQLite database
(a temporary `CONTROLPLANE_VAR_DIR`, locmem shared cache):
- quality: for each pair, the first question is stored in a scope of its own and the second is
  looked up with threshold 0, which reports the served entry's similarity (1.0 for an exact
  match after normalisation), or nothing when the lexical guard refuses the match. A paraphrase
  pair at or above a threshold is a true positive, a negative pair a false positive. Precision =
  TP / (TP + FP); hit rate = TP / paraphrase pairs (the share of paraphrases served). Two sets,
  same run: bench/data/cache_pairs.jsonl (the set the guard's rules were written against) and
  bench/data/cache_pairs_heldout.jsonl (written afterwards and never used to change the guard).
  `--no-guard` measures cosine similarity alone (the guard accepts every candidate).
- latency: one scope filled with N entries (the tuned set's first questions plus random unit
  vectors), then `lookup` for an exact hit (normalise + hash + index + one verifying row read),
  a semantic hit and a semantic miss (both include embedding the question), and the in-memory
  vector search alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _measure  # noqa: E402 - needs ROOT on sys.path
from bench._meta import print_header  # noqa: E402 - needs ROOT on sys.path
from bench._setup import in_process_environment  # noqa: E402 - needs ROOT on sys.path

in_process_environment("cache-bench-", is_local=True)
os.environ["SEMANTIC_CACHE_WRITER"] = "inline"

import django  # noqa: E402 - the environment above must be set first

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Application, Clearance, Team  # noqa: E402
from core.embeddings import embed  # noqa: E402
from gateway.semantic_cache import services  # noqa: E402
from gateway.semantic_cache.models import DEFAULT_THRESHOLD, CacheEntry, CacheMode, CacheSettings  # noqa: E402

PAIRS = ROOT / "bench" / "data" / "cache_pairs.jsonl"
# Written after the guard, and never used to change it: the honest precision figure.
HELD_OUT_PAIRS = ROOT / "bench" / "data" / "cache_pairs_heldout.jsonl"
THRESHOLDS = [round(0.80 + 0.02 * step, 2) for step in range(10)]
TARGET_PRECISION = 0.95


def measure(function: Callable[[int], object], iterations: int) -> tuple[float, float]:
    return _measure.measure(function, iterations, warm_up=20)


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


def load_pairs(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def similarities_for(application: Application, pairs: list[dict[str, str]], prefix: str) -> list[float]:
    """Each pair's first question stored in a scope of its own, the second looked up: the served
    entry's similarity (1.0 for an exact match), or -1 when nothing is served (the guard refused)."""
    found = []
    for number, pair in enumerate(pairs):
        pair_scope = scope(application, f"{prefix}-{number}")
        services.store(
            scope=pair_scope, messages=messages(pair["first"]), completion=completion("x"), cost_usd=Decimal("0.001")
        )
        result = services.lookup(scope=pair_scope, messages=messages(pair["second"]))
        found.append(result.hit.similarity if result.hit else -1.0)
    return found


def counts(pairs: list[dict[str, str]], similarities: list[float], threshold: float) -> tuple[int, int]:
    true_positive = sum(
        1
        for pair, similarity in zip(pairs, similarities, strict=True)
        if pair["label"] == "paraphrase" and similarity >= threshold
    )
    false_positive = sum(
        1
        for pair, similarity in zip(pairs, similarities, strict=True)
        if pair["label"] == "negative" and similarity >= threshold
    )
    return true_positive, false_positive


def precision_text(true_positive: int, false_positive: int) -> str:
    served = true_positive + false_positive
    return f"{true_positive / served:.3f}" if served else "n/a"


def by_kind(pairs: list[dict[str, str]], similarities: list[float], threshold: float) -> str:
    table: dict[str, list[int]] = {}
    for pair, similarity in zip(pairs, similarities, strict=True):
        served = table.setdefault(f"{pair['label']}/{pair['kind']}", [0, 0])
        served[0] += similarity >= threshold
        served[1] += 1
    return ", ".join(f"{kind} {hit}/{total}" for kind, (hit, total) in table.items())


def quality(application: Application, sets: list[tuple[str, Path]]) -> float:
    """Precision and hit rate per threshold for every pair set, side by side (the first set is the
    one the guard was tuned on: it picks the reported threshold); returns that threshold."""
    results = []
    for name, path in sets:
        pairs = load_pairs(path)
        similarities = similarities_for(application, pairs, name)
        positives = sum(1 for pair in pairs if pair["label"] == "paraphrase")
        results.append((name, pairs, similarities, positives))
        print(
            f"{name}: {len(pairs)} pairs ({positives} paraphrases, {len(pairs) - positives} negatives), "
            f"{path.relative_to(ROOT)}"
        )
    print()
    print("| threshold | " + " | ".join(f"{name}: precision | hit rate | TP | FP" for name, *_ in results) + " |")
    print("|---:|" + "---:|---:|---:|---:|" * len(results))
    chosen = None
    for threshold in THRESHOLDS:
        cells = []
        for index, (_, pairs, similarities, positives) in enumerate(results):
            true_positive, false_positive = counts(pairs, similarities, threshold)
            cells.append(
                f"{precision_text(true_positive, false_positive)} | {true_positive / positives:.3f} | "
                f"{true_positive} | {false_positive}"
            )
            served = true_positive + false_positive
            if index == 0 and chosen is None and served and true_positive / served >= TARGET_PRECISION:
                chosen = threshold
        print(f"| {threshold:.2f} | " + " | ".join(cells) + " |")
    print()
    if chosen is None:
        print(f"No threshold reaches precision {TARGET_PRECISION} on {results[0][0]}; by kind at {DEFAULT_THRESHOLD}:")
        chosen = DEFAULT_THRESHOLD
    else:
        print(f"Lowest threshold with precision >= {TARGET_PRECISION} on {results[0][0]}: {chosen:.2f}. By kind there:")
    for name, pairs, similarities, _ in results:
        true_positive, false_positive = counts(pairs, similarities, chosen)
        print(
            f"  {name}: precision {precision_text(true_positive, false_positive)}, hit rate "
            f"{true_positive / sum(1 for pair in pairs if pair['label'] == 'paraphrase'):.3f}; "
            + by_kind(pairs, similarities, chosen)
        )
    return chosen


def latency(application: Application, size: int, iterations: int, threshold: float) -> dict[str, tuple[float, float]]:
    CacheEntry.objects.filter(application=application).delete()
    CacheSettings.objects.filter(application=application).update(threshold=threshold)
    services.generation_bump(application.id)
    services.forget_all()
    pairs = load_pairs(PAIRS)
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
    parser.add_argument("--sizes", default="10000,100000", help="scope sizes for latency; empty: quality only")
    parser.add_argument(
        "--no-guard",
        action="store_true",
        help="cosine similarity alone: the lexical guard (gateway/semantic_cache/guard.py) accepts every candidate",
    )
    arguments = parser.parse_args()
    print_header()
    if arguments.no_guard:
        # The one place lookup consults the guard (services.lookups._verified); nothing else is changed.
        services.lookups.compatible = lambda first, second: True  # type: ignore[assignment]
    print(f"Match rule: cosine >= threshold{'' if arguments.no_guard else ' AND the lexical guard'}")
    application = setup_application()
    threshold = quality(application, [("tuned set", PAIRS), ("held-out set", HELD_OUT_PAIRS)])
    embed(["warm up"])
    print()
    sizes = [int(size) for size in arguments.sizes.split(",") if size.strip()]
    if not sizes:
        return
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
