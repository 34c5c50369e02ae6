"""Reads of datasets, scorers and brand policies, scoped to the caller's teams and clearance.

An object outside the caller's teams (or one the caller's role may not read) is missing (404),
never forbidden. Reads follow clearance: a dataset classified above the caller's clearance in
its team shows its name, counts and classification but not its description, schema or items'
content; an item above it (its own classification, or its dataset's) is masked in memory
(`is_masked`, content None) by `items_masked_for`; the rows never change.
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model, Prefetch, Q, QuerySet

from core.classification import Clearance
from core.errors import NotFound, ValidationFailed
from core.ids import parse_whole_number
from evaluations import stats
from evaluations.models import (
    BrandPolicy,
    BrandPolicyVersion,
    Dataset,
    DatasetItem,
    DatasetVersion,
    EvalResult,
    EvalRun,
    EvalScore,
    ScorerConfig,
    ScorerConfigVersion,
)
from evaluations.permissions import VIEW_DATASET, VIEW_RUN, VIEW_SCORER

if TYPE_CHECKING:
    from accounts.caller import Caller

_TeamOwned = TypeVar("_TeamOwned", bound=Model)  # a model with a `team` foreign key

ITEM_CONTENT_FIELDS = ("input", "expected_output", "expected_facts", "context", "tags", "metadata")


def readable_team_ids(caller: Caller, permission: str) -> list[int]:
    return [team_id for team_id in caller.team_ids if caller.has_permission(permission, team_id=team_id)]


def _object_id(value: Any, noun: str) -> int:
    parsed = parse_whole_number(str(value))
    if parsed is None:
        raise NotFound(f"No {noun} with id {str(value)[:40]!r} exists in your teams.")
    return parsed


def _in_readable_teams(
    queryset: QuerySet[_TeamOwned], *, caller: Caller, permission: str, team_id: int | None = None
) -> QuerySet[_TeamOwned]:
    """The rows of `queryset` in the caller's teams that grant `permission` (or in `team_id`, one of them)."""
    queryset = queryset.filter(team_id__in=readable_team_ids(caller, permission))
    if team_id is not None:
        queryset = queryset.filter(team_id=team_id)
    return queryset


def _readable_get(
    queryset: QuerySet[_TeamOwned], *, caller: Caller, permission: str, object_id: Any, noun: str
) -> _TeamOwned:
    """One row of `queryset` in the caller's teams; another team's is a 404 like a missing one."""
    parsed = _object_id(object_id, noun)
    try:
        return _in_readable_teams(queryset, caller=caller, permission=permission).get(id=parsed)
    except ObjectDoesNotExist:
        raise NotFound(f"No {noun} with id {parsed} exists in your teams.") from None


# Datasets -------------------------------------------------------------------------


def dataset_list(*, caller: Caller, team_id: int | None = None, include_archived: bool = False) -> QuerySet[Dataset]:
    queryset = _in_readable_teams(Dataset.objects.all(), caller=caller, permission=VIEW_DATASET, team_id=team_id)
    if not include_archived:
        queryset = queryset.filter(is_archived=False)
    return queryset.order_by("-id")


def dataset_get(*, caller: Caller, dataset_id: Any) -> Dataset:
    """A dataset of the caller's teams (archived ones too: a run may have pinned one of its versions)."""
    return _readable_get(
        Dataset.objects.all(), caller=caller, permission=VIEW_DATASET, object_id=dataset_id, noun="dataset"
    )


def dataset_is_visible(*, caller: Caller, dataset: Dataset) -> bool:
    return dataset.classification <= caller.clearance_in(dataset.team_id)


def item_is_visible(*, caller: Caller, dataset: Dataset, item: DatasetItem) -> bool:
    return max(dataset.classification, item.classification) <= caller.clearance_in(dataset.team_id)


def version_number(dataset: Dataset, value: Any, *, param: str = "version") -> int:
    """A version number of `dataset` from a query or body value (None or "": the current one)."""
    if value is None or value == "":
        return dataset.current_version
    number = parse_whole_number(str(value), maximum=2**31 - 1)
    if number is None or number < 1:
        raise ValidationFailed(f"{param} must be a version number (a whole number from 1).", param=param)
    if number > dataset.current_version:
        raise NotFound(
            f"Dataset {dataset.pk} has no version {number}; its newest is {dataset.current_version}.", param=param
        )
    return number


def version_list(*, dataset: Dataset) -> QuerySet[DatasetVersion]:
    return DatasetVersion.objects.filter(dataset=dataset).order_by("-number")


def version_get(*, dataset: Dataset, number: Any) -> DatasetVersion:
    parsed = version_number(dataset, number)
    return DatasetVersion.objects.get(dataset=dataset, number=parsed)


def items_at(*, dataset: Dataset | int, version: int) -> QuerySet[DatasetItem]:
    """The items of one dataset version, oldest first (reproducible: rows are immutable)."""
    dataset_id = dataset if isinstance(dataset, int) else dataset.pk
    return (
        DatasetItem.objects.filter(dataset_id=dataset_id, added_in_version__lte=version)
        .filter(Q(removed_in_version__isnull=True) | Q(removed_in_version__gt=version))
        .order_by("id")
    )


def parse_item_key(value: Any, *, param: str = "key") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        raise ValidationFailed(f"{str(value)[:60]!r} is not an item key; item keys are UUIDs.", param=param) from None


def item_get(*, dataset: Dataset, key: Any, version: int | None = None) -> DatasetItem:
    parsed = parse_item_key(key)
    number = dataset.current_version if version is None else version
    item = items_at(dataset=dataset, version=number).filter(key=parsed).first()
    if item is None:
        raise NotFound(f"Dataset {dataset.pk} has no item {parsed} at version {number}.")
    return item


def items_masked_for(*, caller: Caller, dataset: Dataset, items: Iterable[DatasetItem]) -> list[DatasetItem]:
    """Items as the caller may see them: content above the caller's clearance is None and
    `is_masked` is set (in memory only; a masked instance must never be saved)."""
    result = []
    for item in items:
        item.is_masked = not item_is_visible(caller=caller, dataset=dataset, item=item)  # type: ignore[attr-defined]
        if item.is_masked:  # type: ignore[attr-defined]
            for name in ITEM_CONTENT_FIELDS:
                setattr(item, name, None)
        result.append(item)
    return result


def item_document(item: DatasetItem) -> dict[str, Any]:
    """An item as one JSONL line of an export (re-importable: the item fields plus key and provenance)."""
    masked = getattr(item, "is_masked", False)
    document: dict[str, Any] = {"key": str(item.key)}
    for name in ITEM_CONTENT_FIELDS:
        document[name] = getattr(item, name)
    document["classification"] = Clearance(item.classification).label
    document["is_masked"] = masked
    document["provenance"] = item_provenance(item)
    return document


def item_provenance(item: DatasetItem) -> dict[str, Any]:
    return {
        "source": item.source,
        "file": item.source_file or None,
        "line": item.source_line,
        "call_id": str(item.source_call_id) if item.source_call_id else None,
        "correction_id": item.source_correction_id or None,
    }


def dataset_export_lines(*, caller: Caller, dataset: Dataset, version: int) -> Iterator[bytes]:
    """The items of `version` as JSONL, masked for the caller, read in chunks (memory stays flat)."""
    for item in items_at(dataset=dataset, version=version).iterator(chunk_size=500):
        (masked,) = items_masked_for(caller=caller, dataset=dataset, items=[item])
        yield orjson.dumps(item_document(masked)) + b"\n"


# Scorers and brand policies -------------------------------------------------------


def scorer_list(*, caller: Caller, team_id: int | None = None) -> QuerySet[ScorerConfig]:
    queryset = _in_readable_teams(ScorerConfig.objects.all(), caller=caller, permission=VIEW_SCORER, team_id=team_id)
    return queryset.order_by("name", "id")


def scorer_get(*, caller: Caller, scorer_id: Any) -> ScorerConfig:
    return _readable_get(
        ScorerConfig.objects.all(), caller=caller, permission=VIEW_SCORER, object_id=scorer_id, noun="scorer"
    )


def scorer_version_get(*, scorer: ScorerConfig, number: int | None = None) -> ScorerConfigVersion:
    return ScorerConfigVersion.objects.get(scorer=scorer, number=number or scorer.current_version)


def brand_policy_list(*, caller: Caller, team_id: int | None = None) -> QuerySet[BrandPolicy]:
    queryset = _in_readable_teams(BrandPolicy.objects.all(), caller=caller, permission=VIEW_SCORER, team_id=team_id)
    return queryset.order_by("name", "id")


def brand_policy_get(*, caller: Caller, policy_id: Any) -> BrandPolicy:
    return _readable_get(
        BrandPolicy.objects.all(), caller=caller, permission=VIEW_SCORER, object_id=policy_id, noun="brand policy"
    )


def brand_policy_version_get(*, policy: BrandPolicy, number: int | None = None) -> BrandPolicyVersion:
    number = number or policy.current_version
    try:
        return BrandPolicyVersion.objects.get(policy=policy, number=number)
    except BrandPolicyVersion.DoesNotExist:
        raise NotFound(f"Brand policy {policy.pk} has no version {number}.", param="policy_version") from None


# Eval runs ------------------------------------------------------------------------


def run_list(*, caller: Caller, team_id: int | None = None) -> QuerySet[EvalRun]:
    queryset = _in_readable_teams(
        EvalRun.objects.select_related("dataset"), caller=caller, permission=VIEW_RUN, team_id=team_id
    )
    return queryset.order_by("-id")


def run_get(*, caller: Caller, run_id: Any) -> EvalRun:
    return _readable_get(
        EvalRun.objects.select_related("dataset"), caller=caller, permission=VIEW_RUN, object_id=run_id, noun="eval run"
    )


def run_results(*, run: EvalRun, status: str | None = None) -> QuerySet[EvalResult]:
    """A run's results in item order, with their scores (one query for the page's scores)."""
    queryset = EvalResult.objects.filter(run=run).prefetch_related(
        Prefetch("scores", queryset=EvalScore.objects.order_by("scorer_index"))
    )
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("id")


def result_is_visible(*, caller: Caller, run: EvalRun, result: EvalResult) -> bool:
    return result.classification <= caller.clearance_in(run.team_id)


def results_masked_for(*, caller: Caller, run: EvalRun, results: Iterable[EvalResult]) -> list[EvalResult]:
    """Results as the caller may see them: above the caller's clearance the output, error and
    scores' explanations are None and `is_masked` is set (in memory only; never saved)."""
    shown = []
    for result in results:
        result.is_masked = not result_is_visible(caller=caller, run=run, result=result)  # type: ignore[attr-defined]
        shown.append(result)
    return shown


@dataclass(frozen=True)
class ScorerSummary:
    index: int
    name: str
    kind: str
    version: str
    scored: int  # results with a value
    errors: int  # results the scorer could not score
    mean: float | None
    mean_interval: stats.Interval | None
    pass_rate: float | None
    pass_interval: stats.Interval | None
    threshold: float | None  # the threshold the pass rate used (None: each scorer's own)
    mean_spread: float | None  # judges asked k times: the mean of max - min


def run_summary(*, run: EvalRun, threshold: float | None = None) -> list[ScorerSummary]:
    """Per scorer: mean with its 95% t interval, pass rate (at `threshold`, or each score's own
    verdict) with its Wilson interval, and the error count. Reads one column per score row."""
    values: dict[int, list[float]] = {index: [] for index in range(len(run.scorers))}
    passes: dict[int, int] = dict.fromkeys(values, 0)
    errors: dict[int, int] = dict.fromkeys(values, 0)
    spreads: dict[int, list[float]] = {index: [] for index in values}
    versions: dict[int, str] = {}
    rows = EvalScore.objects.filter(result__run=run).values_list(
        "scorer_index", "value", "passed", "spread", "scorer_version"
    )
    for index, value, passed, spread, version in rows.iterator(chunk_size=5000):
        if index not in values:
            continue
        versions.setdefault(index, version)
        if value is None:
            errors[index] += 1
            continue
        values[index].append(value)
        if (value >= threshold) if threshold is not None else bool(passed):
            passes[index] += 1
        if spread is not None:
            spreads[index].append(spread)
    summaries = []
    for index, entry in enumerate(run.scorers):
        scored = values[index]
        summaries.append(
            ScorerSummary(
                index=index,
                name=entry["name"],
                kind=entry["kind"],
                version=versions.get(index, ""),
                scored=len(scored),
                errors=errors[index],
                mean=statistics.fmean(scored) if scored else None,
                mean_interval=stats.mean_interval(scored),
                pass_rate=passes[index] / len(scored) if scored else None,
                pass_interval=stats.wilson_interval(passes[index], len(scored)),
                threshold=threshold,
                mean_spread=statistics.fmean(spreads[index]) if spreads[index] else None,
            )
        )
    return summaries


def run_item_scores(*, run: EvalRun) -> dict[str, dict[uuid.UUID, float]]:
    """Scorer name -> item key -> the item's score (the mean over repeats; items whose every
    repeat errored or failed are absent). What a paired comparison of two runs reads."""
    sums: dict[str, dict[uuid.UUID, list[float]]] = {}
    rows = EvalScore.objects.filter(result__run=run, value__isnull=False).values_list(
        "scorer_name", "result__item_key", "value"
    )
    for name, key, value in rows.iterator(chunk_size=5000):
        if value is not None:
            sums.setdefault(name, {}).setdefault(key, []).append(value)
    return {name: {key: statistics.fmean(found) for key, found in by_key.items()} for name, by_key in sums.items()}
