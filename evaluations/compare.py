"""Comparing runs on the same dataset version (reads only; the statistics are in evaluations.paired).

The first run is the baseline; every other run is compared with it. Per scorer (matched by name
and kind), over the items both runs scored: the mean difference with its paired bootstrap
interval, the pass rates at the scorer's threshold with McNemar's exact test, and a verdict.
An item's score is the mean over its repeats; an item a run could not score (failed, or the
scorer errored) is left out of that scorer's pairs and counted.

Per item: the regressions (candidate below baseline) and improvements, sorted by the size of the
change, each with both answers. An answer above the caller's clearance is masked (None, with
`is_masked`), never sent.
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import NotFound, ValidationFailed
from core.ids import parse_whole_number
from evaluations import paired, selectors
from evaluations.models import DatasetItem, EvalResult, EvalRun, EvalScore
from evaluations.permissions import VIEW_RUN
from evaluations.scorers import registry

if TYPE_CHECKING:
    from accounts.caller import Caller

MAX_COMPARED_RUNS = 5
DEFAULT_ITEM_LIMIT = 20
MAX_ITEM_LIMIT = 500


@dataclass(frozen=True)
class ScorerComparison:
    scorer: str
    kind: str
    threshold: float
    pairs: int  # items both runs scored
    unpaired: int  # items only one run (or neither) scored
    baseline_mean: float | None
    candidate_mean: float | None
    difference: float | None  # candidate - baseline, over the pairs
    interval: paired.Interval | None
    baseline_pass_rate: float | None
    candidate_pass_rate: float | None
    mcnemar: paired.McNemar | None
    verdict: str

    @property
    def summary(self) -> str:
        if self.verdict == paired.NO_DIFFERENCE:
            return f"no detectable difference with {self.pairs} items"
        return f"{self.verdict} ({self.pairs} items)"


@dataclass(frozen=True)
class Answer:
    run_id: int
    result_id: int | None
    score: float | None
    output: str | None  # None when masked or when the run has no answer for the item
    is_masked: bool
    status: str
    scores: dict[str, float] = field(default_factory=dict)  # side by side: every scorer's score


@dataclass(frozen=True)
class ItemChange:
    item_key: uuid.UUID
    scorer: str
    delta: float  # candidate - baseline
    baseline: Answer
    candidate: Answer


@dataclass
class PairComparison:
    baseline: EvalRun
    candidate: EvalRun
    scorers: list[ScorerComparison]
    regressions: list[ItemChange] = field(default_factory=list)
    improvements: list[ItemChange] = field(default_factory=list)
    skipped_scorers: list[str] = field(default_factory=list)  # in one run only, or of another kind


@dataclass
class Comparison:
    runs: list[EvalRun]
    dataset_id: int
    dataset_version: int
    pairs: list[PairComparison]


# Pure parts ------------------------------------------------------------------------------


def scorer_threshold(entry: dict[str, Any]) -> float:
    """The threshold a run's scorer entry passes at: its configured one, else its kind's default."""
    configured = (entry.get("config") or {}).get("threshold", entry.get("threshold"))
    if configured is not None:
        return float(configured)
    spec = registry.SPECS.get(entry.get("kind", ""))
    return float(spec.default_threshold) if spec is not None else 0.5


def compare_scores(
    *,
    scorer: str,
    kind: str,
    threshold: float,
    baseline: dict[uuid.UUID, float],
    candidate: dict[uuid.UUID, float],
) -> ScorerComparison:
    """The paired comparison of one scorer's per-item scores (item key -> score in [0, 1])."""
    keys = sorted(baseline.keys() & candidate.keys())
    unpaired = len(baseline.keys() | candidate.keys()) - len(keys)
    if not keys:
        return ScorerComparison(
            scorer=scorer,
            kind=kind,
            threshold=threshold,
            pairs=0,
            unpaired=unpaired,
            baseline_mean=None,
            candidate_mean=None,
            difference=None,
            interval=None,
            baseline_pass_rate=None,
            candidate_pass_rate=None,
            mcnemar=None,
            verdict=paired.NO_DIFFERENCE,
        )
    before = np.array([baseline[key] for key in keys], dtype=np.float64)
    after = np.array([candidate[key] for key in keys], dtype=np.float64)
    interval = paired.bootstrap_mean_interval(after - before)
    before_passed = before >= threshold
    after_passed = after >= threshold
    mcnemar = paired.mcnemar_exact(before_passed, after_passed)
    return ScorerComparison(
        scorer=scorer,
        kind=kind,
        threshold=threshold,
        pairs=len(keys),
        unpaired=unpaired,
        baseline_mean=float(before.mean()),
        candidate_mean=float(after.mean()),
        difference=float((after - before).mean()),
        interval=interval,
        baseline_pass_rate=float(before_passed.mean()),
        candidate_pass_rate=float(after_passed.mean()),
        mcnemar=mcnemar,
        verdict=paired.verdict(interval=interval, mcnemar=mcnemar),
    )


# Reads -----------------------------------------------------------------------------------


def parse_run_ids(value: str) -> list[int]:
    """`runs=1,2[,3]` -> ids, in order; 400 naming what is wrong."""
    parts = [part.strip() for part in (value or "").split(",") if part.strip()]
    ids = []
    for part in parts:
        number = parse_whole_number(part)
        if number is None:
            raise ValidationFailed(f"runs: {part[:40]!r} is not a run id; give ids like runs=12,15.", param="runs")
        ids.append(number)
    if len(ids) < 2 or len(set(ids)) != len(ids):
        raise ValidationFailed(
            "runs: give two or more different run ids, the baseline first (runs=12,15).", param="runs"
        )
    if len(ids) > MAX_COMPARED_RUNS:
        raise ValidationFailed(f"runs: compare at most {MAX_COMPARED_RUNS} runs at once.", param="runs")
    return ids


def runs_for_comparison(*, caller: Caller, run_ids: Sequence[int]) -> list[EvalRun]:
    """The runs, in the order given, all readable by the caller and on one dataset version."""
    readable = EvalRun.objects.filter(team_id__in=selectors.readable_team_ids(caller, VIEW_RUN)).select_related(
        "dataset"
    )
    found = {run.pk: run for run in readable.filter(pk__in=run_ids)}
    missing = [run_id for run_id in run_ids if run_id not in found]
    if missing:
        raise NotFound(f"No eval run with id {missing[0]} exists in your teams.", param="runs")
    runs = [found[run_id] for run_id in run_ids]
    baseline = runs[0]
    for run in runs[1:]:
        if (run.dataset_id, run.dataset_version) != (baseline.dataset_id, baseline.dataset_version):
            raise ValidationFailed(
                f"runs: run {baseline.pk} used dataset {baseline.dataset_id} version {baseline.dataset_version} "
                f"and run {run.pk} used dataset {run.dataset_id} version {run.dataset_version}; "
                "only runs on the same dataset version can be compared item by item.",
                param="runs",
            )
    return runs


def _item_scores(run: EvalRun) -> dict[str, dict[uuid.UUID, float]]:
    sums: dict[str, dict[uuid.UUID, list[float]]] = {}
    rows = EvalScore.objects.filter(result__run=run, value__isnull=False).values_list(
        "scorer_name", "result__item_key", "value"
    )
    for name, key, value in rows.iterator(chunk_size=5000):
        if value is not None:  # filtered out above; the column is nullable
            sums.setdefault(name, {}).setdefault(key, []).append(value)
    return {name: {key: statistics.fmean(found) for key, found in by_key.items()} for name, by_key in sums.items()}


def run_pair_comparison(baseline: EvalRun, candidate: EvalRun) -> tuple[PairComparison, dict[str, Any]]:
    """Per-scorer statistics of one pair (no item answers); also the per-item scores, by scorer."""
    before_scores = _item_scores(baseline)
    after_scores = _item_scores(candidate)
    entries_before = {entry["name"]: entry for entry in baseline.scorers}
    comparisons = []
    skipped = []
    per_item: dict[str, Any] = {}
    for entry in candidate.scorers:
        name = entry["name"]
        other = entries_before.get(name)
        if other is None or other.get("kind") != entry.get("kind"):
            skipped.append(name)
            continue
        comparisons.append(
            compare_scores(
                scorer=name,
                kind=entry["kind"],
                threshold=scorer_threshold(entry),
                baseline=before_scores.get(name, {}),
                candidate=after_scores.get(name, {}),
            )
        )
        per_item[name] = (before_scores.get(name, {}), after_scores.get(name, {}))
    skipped += [name for name in entries_before if name not in {entry["name"] for entry in candidate.scorers}]
    return PairComparison(
        baseline=baseline, candidate=candidate, scorers=comparisons, skipped_scorers=skipped
    ), per_item


def _answers(*, run: EvalRun, keys: set[uuid.UUID]) -> dict[uuid.UUID, EvalResult]:
    """The first repeat's result of each item (its answer), in one query."""
    results = EvalResult.objects.filter(run=run, item_key__in=keys, repeat=0).only(
        "id", "item_key", "output", "classification", "status"
    )
    return {result.item_key: result for result in results}


def _answer(
    *,
    caller: Caller,
    run: EvalRun,
    result: EvalResult | None,
    score: float | None,
    scores: dict[str, float] | None = None,
) -> Answer:
    if result is None:
        return Answer(run_id=run.pk, result_id=None, score=score, output=None, is_masked=False, status="missing")
    is_masked = result.classification > caller.clearance_in(run.team_id)
    return Answer(
        run_id=run.pk,
        result_id=result.pk,
        score=score,
        output=None if is_masked else result.output,
        is_masked=is_masked,
        status=result.status,
        scores=scores or {},
    )


def item_changes(
    *,
    caller: Caller,
    baseline: EvalRun,
    candidate: EvalRun,
    per_item: dict[str, Any],
    scorer: str | None = None,
    limit: int = DEFAULT_ITEM_LIMIT,
    order: str = "largest",
) -> tuple[list[ItemChange], list[ItemChange]]:
    """Regressions and improvements (of `scorer`, or every compared scorer), largest change first
    (`order="smallest"` reverses it), at most `limit` of each, with both answers."""
    regressions: list[tuple[float, str, uuid.UUID]] = []
    improvements: list[tuple[float, str, uuid.UUID]] = []
    for name, (before, after) in per_item.items():
        if scorer and name != scorer:
            continue
        for key in before.keys() & after.keys():
            delta = after[key] - before[key]
            if delta < 0:
                regressions.append((delta, name, key))
            elif delta > 0:
                improvements.append((delta, name, key))
    is_largest = order != "smallest"
    regressions.sort(key=lambda row: (row[0] if is_largest else -row[0], row[1], str(row[2])))
    improvements.sort(key=lambda row: (-row[0] if is_largest else row[0], row[1], str(row[2])))
    regressions, improvements = regressions[:limit], improvements[:limit]
    keys = {row[2] for row in regressions + improvements}
    before_results = _answers(run=baseline, keys=keys)
    after_results = _answers(run=candidate, keys=keys)

    def change(row: tuple[float, str, uuid.UUID]) -> ItemChange:
        delta, name, key = row
        before, after = per_item[name]
        return ItemChange(
            item_key=key,
            scorer=name,
            delta=delta,
            baseline=_answer(caller=caller, run=baseline, result=before_results.get(key), score=before[key]),
            candidate=_answer(caller=caller, run=candidate, result=after_results.get(key), score=after[key]),
        )

    return [change(row) for row in regressions], [change(row) for row in improvements]


def runs_compare(
    *,
    caller: Caller,
    run_ids: Sequence[int],
    scorer: str | None = None,
    limit: int = DEFAULT_ITEM_LIMIT,
    order: str = "largest",
) -> Comparison:
    """Compare each run after the first with the first (the baseline). What the compare API and
    page show."""
    if not 1 <= limit <= MAX_ITEM_LIMIT:
        raise ValidationFailed(f"limit must be from 1 to {MAX_ITEM_LIMIT}; got {limit}.", param="limit")
    if order not in ("largest", "smallest"):
        raise ValidationFailed(f"order must be largest or smallest; got {order!r}.", param="order")
    runs = runs_for_comparison(caller=caller, run_ids=run_ids)
    baseline = runs[0]
    pairs = []
    for candidate in runs[1:]:
        pair, per_item = run_pair_comparison(baseline, candidate)
        pair.regressions, pair.improvements = item_changes(
            caller=caller,
            baseline=baseline,
            candidate=candidate,
            per_item=per_item,
            scorer=scorer,
            limit=limit,
            order=order,
        )
        pairs.append(pair)
    return Comparison(runs=runs, dataset_id=baseline.dataset_id, dataset_version=baseline.dataset_version, pairs=pairs)


@dataclass(frozen=True)
class SideBySide:
    item_key: uuid.UUID
    input: Any  # None when masked
    expected_output: str | None
    is_item_masked: bool
    answers: list[Answer]


def item_side_by_side(*, caller: Caller, run_ids: Sequence[int], item_key: Any) -> SideBySide:
    """One item's input and each run's answer and scores, for opening two answers side by side."""
    runs = runs_for_comparison(caller=caller, run_ids=run_ids)
    key = selectors.parse_item_key(item_key, param="item")
    baseline = runs[0]
    item = (
        DatasetItem.objects.filter(dataset_id=baseline.dataset_id, key=key)
        .filter(added_in_version__lte=baseline.dataset_version)
        .exclude(removed_in_version__lte=baseline.dataset_version)
        .first()
    )
    if item is None:
        raise NotFound(f"Item {key} is not in version {baseline.dataset_version} of the runs' dataset.", param="item")
    is_item_masked = not selectors.item_is_visible(caller=caller, dataset=baseline.dataset, item=item)
    answers = []
    for run in runs:
        result = EvalResult.objects.filter(run=run, item_key=key, repeat=0).first()
        found: dict[str, list[float]] = {}
        rows = EvalScore.objects.filter(result__run=run, result__item_key=key, value__isnull=False).values_list(
            "scorer_name", "value"
        )
        for name, value in rows:
            if value is not None:  # filtered out above; the column is nullable
                found.setdefault(name, []).append(value)
        scores = {name: statistics.fmean(values) for name, values in found.items()}
        answers.append(_answer(caller=caller, run=run, result=result, score=None, scores=scores))
    return SideBySide(
        item_key=key,
        input=None if is_item_masked else item.input,
        expected_output=None if is_item_masked else item.expected_output,
        is_item_masked=is_item_masked,
        answers=answers,
    )
