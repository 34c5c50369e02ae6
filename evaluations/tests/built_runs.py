"""Completed runs written straight to the database, with chosen scores per item: what the
compare and gate tests read (the statistics, not the execution, are under test there)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from core.classification import Clearance
from evaluations import selectors
from evaluations.models import Dataset, EvalResult, EvalRun, EvalScore
from evaluations.types import ResultStatus, RunStatus, TargetKind

EXACT = {"name": "exact_match", "kind": "exact_match", "config": {}}


def completed_run(
    dataset: Dataset,
    scores: Sequence[float | None],
    *,
    version: Any = None,
    dataset_version: int | None = None,
    outputs: Sequence[str] | None = None,
    scorers: Sequence[dict[str, Any]] = (EXACT,),
    classification: int = Clearance.INTERNAL,
    status: str = RunStatus.COMPLETED,
) -> EvalRun:
    """A run whose item n (in key order) scored `scores[n]` with every scorer (None: an error).
    `version` (a PromptVersion) makes it a run of that prompt version, else of a recorded column."""
    number = dataset_version or dataset.current_version
    items = sorted(selectors.items_at(dataset=dataset, version=number), key=lambda item: str(item.key))
    assert len(items) == len(scores), (len(items), len(scores))
    if version is not None:
        target = {
            "kind": TargetKind.PROMPT,
            "prompt": version.prompt.name,
            "prompt_id": version.prompt_id,
            "version": version.number,
            "label": None,
            "model": "fake-model",
            "params": {},
        }
    else:
        target = {"kind": TargetKind.RECORDED, "column": "expected_output"}
    run = EvalRun.objects.create(
        team_id=dataset.team_id,
        dataset=dataset,
        dataset_version=number,
        target_kind=target["kind"],
        target=target,
        scorers=list(scorers),
        status=status,
        total_count=len(items),
        done_count=len(items) if status == RunStatus.COMPLETED else 0,
        classification=classification,
        finished_at=timezone.now(),
    )
    for index, (item, value) in enumerate(zip(items, scores, strict=True)):
        result = EvalResult.objects.create(
            run=run,
            item_key=item.key,
            item_id=item.pk,
            chunk=0,
            classification=max(classification, item.classification),
            status=ResultStatus.DONE,
            output=outputs[index] if outputs else f"answer {index} of run",
        )
        for scorer_index, entry in enumerate(scorers):
            EvalScore.objects.create(
                result=result,
                scorer_index=scorer_index,
                scorer_name=entry["name"],
                value=value,
                passed=None if value is None else value >= 1.0,
                error="" if value is not None else "could not score",
            )
    return run


def item_keys(dataset: Dataset) -> list[str]:
    return sorted(str(item.key) for item in selectors.items_at(dataset=dataset, version=dataset.current_version))
