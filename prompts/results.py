"""Experiment results: per-variant summaries, significance tests against the first variant
(the control) and a plain verdict.

Until observability and feedback exist, exposures carry latency, cost, an optional quality
score and an optional success flag; the same code reads call records later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prompts import stats
from prompts.models import ExperimentVariant

# metric name -> (kind, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "score": ("mean", True),
    "success_rate": ("rate", True),
    "latency_ms": ("mean", False),
    "cost_usd": ("mean", False),
}
MINIMUM_CALLS = 2


def _mean_entry(summary: stats.MeanSummary) -> dict[str, Any]:
    return {"count": summary.count, "mean": summary.mean, "ci95": [summary.low, summary.high]}


def _rate_entry(summary: stats.RateSummary) -> dict[str, Any]:
    return {
        "count": summary.count,
        "successes": summary.successes,
        "rate": summary.rate,
        "ci95": [summary.low, summary.high],
    }


def summarize(
    *,
    variants: Sequence[ExperimentVariant],
    rows: Sequence[tuple[int, float | None, float | None, float | None, bool | None]],
) -> dict[str, Any]:
    by_variant: dict[int, dict[str, list[Any]]] = {
        variant.id: {"latency_ms": [], "cost_usd": [], "score": [], "success": [], "calls": []} for variant in variants
    }
    for variant_id, latency, cost, score, is_success in rows:
        bucket = by_variant.get(variant_id)
        if bucket is None:
            continue
        bucket["calls"].append(1)
        for key, value in (("latency_ms", latency), ("cost_usd", cost), ("score", score), ("success", is_success)):
            if value is not None:
                bucket[key].append(value)

    summaries: dict[int, dict[str, Any]] = {}
    for variant in variants:
        data = by_variant[variant.id]
        summaries[variant.id] = {
            "score": stats.summarize_mean(data["score"]),
            "success_rate": stats.summarize_rate(sum(1 for value in data["success"] if value), len(data["success"])),
            "latency_ms": stats.summarize_mean(data["latency_ms"]),
            "cost_usd": stats.summarize_mean(data["cost_usd"]),
        }

    control = variants[0] if variants else None
    variant_rows = []
    verdicts = []
    for variant in variants:
        summary = summaries[variant.id]
        metrics: dict[str, Any] = {}
        for metric, (kind, _) in METRICS.items():
            metrics[metric] = _mean_entry(summary[metric]) if kind == "mean" else _rate_entry(summary[metric])
        comparisons: dict[str, Any] = {}
        if control is not None and variant.id != control.id:
            for metric, (kind, higher_is_better) in METRICS.items():
                verdict, comparison = _compare(
                    metric=metric,
                    kind=kind,
                    higher_is_better=higher_is_better,
                    control_name=control.name,
                    variant_name=variant.name,
                    control=summaries[control.id][metric],
                    challenger=summary[metric],
                )
                if comparison is not None:
                    comparisons[metric] = comparison
                if verdict:
                    verdicts.append(verdict)
        variant_rows.append(
            {
                "id": variant.id,
                "name": variant.name,
                "version": variant.version.number,
                "weight": variant.weight,
                "calls": len(by_variant[variant.id]["calls"]),
                "metrics": metrics,
                "versus_control": comparisons,
            }
        )
    if not verdicts:
        verdicts.append("Not enough data yet: no outcomes have been recorded for the variants.")
    return {"control": control.name if control else None, "variants": variant_rows, "verdicts": verdicts}


def _compare(
    *,
    metric: str,
    kind: str,
    higher_is_better: bool,
    control_name: str,
    variant_name: str,
    control: Any,
    challenger: Any,
) -> tuple[str | None, dict[str, Any] | None]:
    if control.count == 0 and challenger.count == 0:
        return None, None
    if kind == "mean":
        test = stats.welch_t_test(control, challenger)
        needed = stats.calls_needed_for_means(control, challenger)
        test_name = "welch_t"
    else:
        test = stats.two_proportion_z_test(control, challenger)
        needed = stats.calls_needed_for_rates(control, challenger)
        test_name = "two_proportion_z"
    if test is None or min(control.count, challenger.count) < MINIMUM_CALLS:
        missing = max(0, MINIMUM_CALLS - min(control.count, challenger.count))
        return f"{metric}: not enough data yet: need about {max(missing, 1)} more calls per variant.", None
    comparison = {
        "test": test_name,
        "statistic": test.statistic,
        "p_value": test.p_value,
        "difference": test.difference,
    }
    if test.p_value < stats.ALPHA and test.difference != 0:
        challenger_wins = (test.difference > 0) == higher_is_better
        better, worse = (variant_name, control_name) if challenger_wins else (control_name, variant_name)
        return f"{better} is better than {worse} on {metric} with p={test.p_value:.2g}.", comparison
    if needed is None:
        return f"{metric}: no difference between {control_name} and {variant_name} (p={test.p_value:.2g}).", comparison
    more = max(needed - min(control.count, challenger.count), 1)
    return (
        f"{metric}: not enough data yet to tell {control_name} and {variant_name} apart (p={test.p_value:.2g}): "
        f"need about {more} more calls per variant.",
        comparison,
    )
