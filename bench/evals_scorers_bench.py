"""Scorer figures: precision / recall / F1 at a scorer's default threshold on a labelled set, and
throughput (items/s) per scorer.

    python bench/evals_scorers_bench.py --scorer toxicity --set evaluations/data/toxicity_dev.jsonl
    python bench/evals_scorers_bench.py --scorer semantic_similarity --set evaluations/data/similarity_dev.jsonl
    python bench/evals_scorers_bench.py --throughput 200

Sets: toxicity lines {"text", "label": 1 toxic / 0 not} (or "toxic": true/false, as the held-out
test set writes it); similarity lines {"a", "b", "label": 1 same meaning / 0 different} (or
"same_meaning": true/false). The positive class is "toxic" and "same meaning". Thresholds were set on
the *_dev.jsonl sets only; report held-out figures on a set nobody tuned on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

import django

django.setup()

from bench._meta import print_header  # noqa: E402
from evaluations.scorers import Example, Score  # noqa: E402
from evaluations.scorers.registry import build_scorer, builtin_scorer  # noqa: E402


def _examples(scorer: str, rows: list[dict]) -> list[Example]:
    if scorer == "toxicity":
        return [Example.build(input="", output=row["text"]) for row in rows]
    return [Example.build(input="", output=row["a"], expected=row["b"]) for row in rows]


def figures(scorer_kind: str, path: str) -> None:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    for row in rows:
        row.setdefault("label", int(bool(row.get("toxic", row.get("same_meaning", False)))))
    scorer = builtin_scorer(scorer_kind)
    results = scorer.score_batch(_examples(scorer_kind, rows))
    true_pos = false_pos = false_neg = true_neg = errors = 0
    for row, result in zip(rows, results, strict=True):
        if not isinstance(result, Score):
            errors += 1
            continue
        predicted = (not result.passed) if scorer_kind == "toxicity" else result.passed
        actual = bool(row["label"])
        true_pos += predicted and actual
        false_pos += predicted and not actual
        false_neg += (not predicted) and actual
        true_neg += (not predicted) and not actual
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
    recall = true_pos / (true_pos + false_neg) if true_pos + false_neg else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(
        f"{scorer_kind} on {path} (n={len(rows)}, positives={sum(row['label'] for row in rows)}, threshold "
        f"{scorer.threshold:.2f}): precision {precision:.3f} recall {recall:.3f} F1 {f1:.3f} "
        f"(tp {true_pos} fp {false_pos} fn {false_neg} tn {true_neg}, errors {errors})"
    )


def throughput(count: int) -> None:
    documents = [{"id": "kb", "text": "Refunds are issued within 14 days. Shipping is free above 50 euros."}]
    example = Example.build(
        input={"messages": [{"role": "user", "content": "When do I get my refund?"}]},
        output="Refunds are issued within 14 days of the return. Thanks for your patience!",
        expected="You will be refunded within two weeks.",
        facts=["Refunds take 14 days"],
        documents=documents,
    )
    configured: dict[str, dict[str, Any]] = {
        "contains": {"values": ["refund"]},
        "not_contains": {"values": ["guarantee"]},
        "regex": {"pattern": r"\d+ days"},
        "json_schema": {"schema": {"type": "object"}},
        "length": {"max_words": 200},
    }
    from evaluations.scorers.registry import SPECS

    for kind in SPECS:
        if kind == "llm_judge":
            continue  # calls a model through the gateway: bench/evals_bench.py measures runs
        if kind == "brand_compliance":
            scorer = build_scorer(
                kind, {"policy": 1}, brand_rules={"forbidden_phrases": ["cheap"], "reading_level": {"max_grade": 10}}
            )
        else:
            scorer = build_scorer(kind, configured.get(kind) or {})
        scorer.score_batch([example])  # warm up (model loads)
        started = time.perf_counter()
        scorer.score_batch([example] * count)
        elapsed = time.perf_counter() - started
        print(f"{kind:22s} {count / elapsed:10.1f} items/s (batches of {count})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scorer", choices=["toxicity", "semantic_similarity"])
    parser.add_argument("--set", dest="path")
    parser.add_argument("--throughput", type=int, default=0, help="items per scorer for the throughput table")
    arguments = parser.parse_args()
    print_header()
    if arguments.scorer and arguments.path:
        figures(arguments.scorer, arguments.path)
    if arguments.throughput:
        throughput(arguments.throughput)


if __name__ == "__main__":
    main()
