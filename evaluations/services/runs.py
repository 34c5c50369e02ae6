"""Writes of eval runs: create (everything checked and pinned first, nothing half-created),
start (one pending result per item and repeat, then the chunks are queued), cancel, retry the
failed items, and resume what a killed worker left (the beat task). The work itself is in
evaluations.execution.

What a run pins when it is created: the dataset version (the current one unless named), the
target's prompt version (a label is resolved once: moving it later changes nothing for this
run), each scorer's configuration version (a built-in kind's configuration is checked and
stored; a judge's prompt label is resolved to a version like the target's).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from compliance.services import audit_record
from core.errors import ApplicationError, Conflict, PermissionDenied, ValidationFailed
from evaluations import limits, selectors
from evaluations.models import EvalResult, EvalRun, EvalScore, ScorerConfigVersion
from evaluations.permissions import RUN_EVAL
from evaluations.scorers import registry
from evaluations.scorers.judge import JUDGE_VARIABLES
from evaluations.services.keys import eval_key_for
from evaluations.services.scorers import _checked_config as checked_config
from evaluations.services.scorers import scorer_for_config
from evaluations.types import ACTIVE_RUN_STATUSES, ResultStatus, RunStatus, ScorerKind, TargetKind
from prompts import selectors as prompt_selectors

if TYPE_CHECKING:
    from accounts.caller import Caller

logger = logging.getLogger(__name__)

CHUNK_SIZE = 25  # results per chunk task: small enough that workers share a run evenly
_START_BATCH = 1_000  # results made per insert when a run starts (memory stays flat)
RECORDED_COLUMNS = ("expected_output",)  # and "metadata.<name>"


def lease_seconds() -> float:
    """How long a worker's claim on a pending result holds before another worker may take it."""
    return float(getattr(settings, "EVAL_LEASE_SECONDS", 300))


@dataclass(frozen=True)
class TargetRequest:
    kind: str  # TargetKind
    prompt: str = ""
    label: str | None = None
    version: int | None = None
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    column: str = ""


@dataclass(frozen=True)
class ScorerRequest:
    """A configured scorer (`scorer_id`, optionally at `version`) or a built-in `kind` with `config`."""

    scorer_id: int | None = None
    version: int | None = None
    kind: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    name: str = ""


# Create -----------------------------------------------------------------------------


def _pinned_prompt(
    *, caller: Caller, team_id: int, name: str, label: str | None, version: int | None, param: str
) -> Any:
    try:
        return prompt_selectors.prompt_resolve(
            caller=caller, name=name, label=label, version=version, team_id=team_id
        ).version
    except PermissionDenied:
        raise
    except ApplicationError as error:
        raise ValidationFailed(f"{param}: {error.message}", param=param) from None


def _target(*, caller: Caller, team_id: int, target: TargetRequest) -> tuple[dict[str, Any], int]:
    """The pinned target and the classification it adds (a prompt version's)."""
    if target.kind == TargetKind.PROMPT:
        if not target.prompt:
            raise ValidationFailed("target.prompt: name the prompt to run.", param="target.prompt")
        if target.label and target.version:
            raise ValidationFailed("target: give label or version, not both.", param="target.version")
        version = _pinned_prompt(
            caller=caller,
            team_id=team_id,
            name=target.prompt,
            label=target.label,
            version=target.version,
            param="target.prompt",
        )
        model = target.model or str(version.params.get("model") or "")
        if not model:
            raise ValidationFailed(
                f"target.model: prompt {target.prompt!r} v{version.version} names no model; give target.model.",
                param="target.model",
            )
        pinned = {
            "kind": target.kind,
            "prompt": version.prompt,
            "prompt_id": version.prompt_id,
            "version": version.version,
            "label": target.label,
            "model": model,
            "params": dict(target.params),
        }
        return pinned, int(version.classification)
    if target.kind == TargetKind.MODEL:
        if not target.model:
            raise ValidationFailed("target.model: name the model to call.", param="target.model")
        return {"kind": target.kind, "model": target.model, "params": dict(target.params)}, 0
    if target.kind == TargetKind.RECORDED:
        column = target.column or "expected_output"
        if column not in RECORDED_COLUMNS and not (column.startswith("metadata.") and len(column) > 9):
            raise ValidationFailed(
                f"target.column: {column!r} is not a recorded output; use expected_output or metadata.<name>.",
                param="target.column",
            )
        return {"kind": target.kind, "column": column}, 0
    raise ValidationFailed(
        f"target.kind must be one of {', '.join(TargetKind.values)}; got {target.kind!r}.", param="target.kind"
    )


def _judge_config(*, caller: Caller, team_id: int, config: dict[str, Any], param: str) -> dict[str, Any]:
    version = _pinned_prompt(
        caller=caller,
        team_id=team_id,
        name=config["prompt"],
        label=config.get("label"),
        version=config.get("version"),
        param=f"{param}.config.prompt",
    )
    model = config.get("model") or version.params.get("model")
    if not model:
        raise ValidationFailed(
            f"{param}.config.model: judge prompt {config['prompt']!r} names no model; give one.",
            param=f"{param}.config.model",
        )
    unknown = sorted(set(version.variables) - set(JUDGE_VARIABLES))
    if unknown:
        raise ValidationFailed(
            f"{param}.config.prompt: judge prompt {config['prompt']!r} v{version.version} declares "
            f"{', '.join(unknown)}; a judge prompt may use only {', '.join(JUDGE_VARIABLES)}.",
            param=f"{param}.config.prompt",
        )
    return {**config, "version": version.version, "label": None, "model": model, "variables": list(version.variables)}


def _scorers(*, caller: Caller, team_id: int, requests: Sequence[ScorerRequest]) -> list[dict[str, Any]]:
    if not requests:
        raise ValidationFailed("scorers: give at least one scorer.", param="scorers")
    if len(requests) > limits.MAX_RUN_SCORERS:
        raise ValidationFailed(f"scorers: at most {limits.MAX_RUN_SCORERS} per run.", param="scorers")
    pinned = []
    for index, request in enumerate(requests):
        param = f"scorers[{index}]"
        if request.scorer_id is not None:
            scorer = selectors.scorer_get(caller=caller, scorer_id=request.scorer_id)
            if scorer.team_id != team_id:
                raise ValidationFailed(f"{param}: scorer {scorer.pk} belongs to another team.", param=param)
            number = request.version or scorer.current_version
            version = ScorerConfigVersion.objects.filter(scorer=scorer, number=number).first()
            if version is None:
                raise ValidationFailed(f"{param}.version: scorer {scorer.pk} has no version {number}.", param=param)
            config = dict(version.config)
            if scorer.kind == ScorerKind.LLM_JUDGE:
                config = _judge_config(caller=caller, team_id=team_id, config=config, param=param)
            pinned.append(
                {
                    "name": request.name or scorer.name,
                    "kind": scorer.kind,
                    "config": config,
                    "scorer_config_id": scorer.pk,
                    "scorer_config_version": number,
                }
            )
            continue
        if request.kind not in registry.SPECS:
            raise ValidationFailed(
                f"{param}.kind: {request.kind!r} is not a scorer; use one of: {', '.join(registry.SPECS)}.",
                param=f"{param}.kind",
            )
        try:
            scorer_for_config(team_id=team_id, kind=request.kind, config=request.config)
        except ValidationFailed as error:
            raise ValidationFailed(f"{param}.{error.message}", param=f"{param}.config") from None
        config = dict(request.config)
        if request.kind == ScorerKind.BRAND_COMPLIANCE:
            config = checked_config(team_id=team_id, kind=request.kind, config=config)  # pins the policy version
        if request.kind == ScorerKind.LLM_JUDGE:
            config = _judge_config(caller=caller, team_id=team_id, config=config, param=param)
        pinned.append({"name": request.name or request.kind, "kind": request.kind, "config": config})
    names = [str(entry["name"]) for entry in pinned]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValidationFailed(
            f"scorers: names must differ within a run ({', '.join(duplicates)} repeated); give each a name.",
            param="scorers",
        )
    return pinned


def eval_run_create(
    *,
    caller: Caller,
    dataset_id: Any,
    target: TargetRequest,
    scorers: Sequence[ScorerRequest],
    dataset_version: Any = None,
    repeats: int = 1,
    uses_cache: bool = False,
    max_concurrency: int = 16,
    name: str = "",
    request: HttpRequest | None = None,
) -> EvalRun:
    """Check and pin everything, then create the run and queue its start (after commit)."""
    dataset = selectors.dataset_get(caller=caller, dataset_id=dataset_id)
    team_id = dataset.team_id
    caller.require_permission(RUN_EVAL, team_id=team_id, action="run evaluations")
    number = selectors.version_number(dataset, dataset_version, param="dataset_version")
    item_count = selectors.items_at(dataset=dataset, version=number).count()
    if item_count == 0:
        raise ValidationFailed(
            f"dataset: version {number} of dataset {dataset.pk} ({dataset.name!r}) has no items; add items first.",
            param="dataset",
        )
    if not 1 <= repeats <= limits.MAX_RUN_REPEATS:
        raise ValidationFailed(f"repeats must be from 1 to {limits.MAX_RUN_REPEATS}; got {repeats}.", param="repeats")
    if item_count * repeats > limits.MAX_RUN_RESULTS:
        raise ValidationFailed(
            f"repeats: {item_count:,} items x {repeats} repeats is over the {limits.MAX_RUN_RESULTS:,} results "
            "one run may have.",
            param="repeats",
        )
    pinned_target, target_level = _target(caller=caller, team_id=team_id, target=target)
    pinned_scorers = _scorers(caller=caller, team_id=team_id, requests=scorers)
    needs_gateway = target.kind != TargetKind.RECORDED or any(
        entry["kind"] == ScorerKind.LLM_JUDGE for entry in pinned_scorers
    )
    active = EvalRun.objects.filter(team_id=team_id, status__in=ACTIVE_RUN_STATUSES).count()
    if active >= limits.MAX_ACTIVE_RUNS_PER_TEAM:
        raise Conflict(f"Your team has {active} runs queued or running, the most allowed; wait for one or cancel one.")
    key = (
        eval_key_for(team_id=team_id, clearance=caller.clearance_in(team_id), uses_cache=uses_cache)
        if needs_gateway
        else None
    )
    with transaction.atomic():
        run = EvalRun.objects.create(
            team_id=team_id,
            name=name[: limits.MAX_NAME_CHARS],
            dataset=dataset,
            dataset_version=number,
            target_kind=target.kind,
            target=pinned_target,
            scorers=pinned_scorers,
            repeats=repeats,
            uses_cache=uses_cache,
            max_concurrency=max_concurrency,
            key=key,
            classification=max(dataset.classification, target_level),
            created_by=caller.user,
            created_by_label=caller.label[:200],
            total_count=item_count * repeats,
        )
        audit_record(
            actor=caller,
            action="eval_run.create",
            target_type="evaluations.evalrun",
            target_id=str(run.pk),
            team_id=team_id,
            after={
                "dataset": dataset.pk,
                "dataset_version": number,
                "target": pinned_target,
                "scorers": [entry["name"] for entry in pinned_scorers],
                "repeats": repeats,
            },
            request=request,
        )
        transaction.on_commit(lambda: _enqueue_start(run.pk))
    return run


# By name: evaluations.tasks imports this module (tasks are entry points over services).
START_TASK = "evaluations.tasks.eval_run_start"
CHUNK_TASK = "evaluations.tasks.eval_chunk_execute"


def _enqueue_start(run_id: int) -> None:
    current_app.send_task(START_TASK, args=[run_id])


def _enqueue_chunks(run_id: int, chunks: Sequence[int]) -> None:
    for chunk in chunks:
        current_app.send_task(CHUNK_TASK, args=[run_id, chunk])


# Start, settle, resume ----------------------------------------------------------------


def eval_run_start(*, run_id: int) -> None:
    """Make the run's results (idempotent: a second start adds nothing) and queue its chunks."""
    with transaction.atomic():
        run = EvalRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != RunStatus.QUEUED:
            return
        index = 0
        batch: list[EvalResult] = []
        items = selectors.items_at(dataset=run.dataset_id, version=run.dataset_version).only(
            "id", "key", "classification"
        )
        for item in items.iterator(chunk_size=_START_BATCH):
            for repeat in range(run.repeats):
                batch.append(
                    EvalResult(
                        run_id=run.pk,
                        item_key=item.key,
                        item_id=item.pk,
                        repeat=repeat,
                        chunk=index // CHUNK_SIZE,
                        classification=max(run.classification, item.classification),
                    )
                )
                index += 1
            if len(batch) >= _START_BATCH:
                EvalResult.objects.bulk_create(batch, ignore_conflicts=True)
                batch = []
        if batch:
            EvalResult.objects.bulk_create(batch, ignore_conflicts=True)
        run.total_count = index
        run.chunk_count = (index + CHUNK_SIZE - 1) // CHUNK_SIZE
        run.status = RunStatus.RUNNING
        run.started_at = run.heartbeat_at = timezone.now()
        run.save(update_fields=["total_count", "chunk_count", "status", "started_at", "heartbeat_at", "updated_at"])
        chunks = list(range(run.chunk_count))
        transaction.on_commit(lambda: _enqueue_chunks(run_id, chunks))
    if index == 0:
        eval_run_settle(run_id=run_id)


def eval_run_settle(*, run_id: int) -> str | None:
    """Finish the run when nothing is left: completed when no result is pending; cancelled when
    it is cancelling and no worker holds a live claim. Returns the new status, if it changed."""
    now = timezone.now()
    pending = EvalResult.objects.filter(run_id=run_id, status=ResultStatus.PENDING)
    if not pending.exists():
        changed = EvalRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            status=RunStatus.COMPLETED, finished_at=now, updated_at=now
        )
        if changed:
            return RunStatus.COMPLETED
    live = pending.filter(lease_token__isnull=False, leased_at__gte=now - timedelta(seconds=lease_seconds()))
    if not live.exists():
        changed = EvalRun.objects.filter(pk=run_id, status=RunStatus.CANCELLING).update(
            status=RunStatus.CANCELLED, finished_at=now, updated_at=now
        )
        if changed:
            return RunStatus.CANCELLED
    return None


def eval_run_fail(*, run_id: int, message: str) -> None:
    now = timezone.now()
    EvalRun.objects.filter(pk=run_id, status__in=ACTIVE_RUN_STATUSES).update(
        status=RunStatus.FAILED, status_message=message[:1000], finished_at=now, updated_at=now
    )


def eval_runs_resume(*, stale_after_seconds: float | None = None) -> int:
    """The safety net (beat): results whose worker stopped renewing its claim for
    `stale_after_seconds` (default: the lease) are released and their chunks queued again;
    runs whose start was lost are started; cancelling runs are settled. Returns the chunks queued."""
    stale = lease_seconds() if stale_after_seconds is None else stale_after_seconds
    cutoff = timezone.now() - timedelta(seconds=stale)
    queued = 0
    for run_id in EvalRun.objects.filter(status=RunStatus.QUEUED, created_at__lt=cutoff).values_list("pk", flat=True):
        _enqueue_start(run_id)
    for run_id in EvalRun.objects.filter(status=RunStatus.CANCELLING).values_list("pk", flat=True):
        EvalResult.objects.filter(run_id=run_id, status=ResultStatus.PENDING, leased_at__lt=cutoff).update(
            lease_token=None, leased_at=None
        )
        eval_run_settle(run_id=run_id)
    running = EvalRun.objects.filter(status=RunStatus.RUNNING).filter(
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff)
    )
    for run_id in running.values_list("pk", flat=True):
        EvalResult.objects.filter(run_id=run_id, status=ResultStatus.PENDING, leased_at__lt=cutoff).update(
            lease_token=None, leased_at=None
        )
        chunks = sorted(
            set(
                EvalResult.objects.filter(run_id=run_id, status=ResultStatus.PENDING, lease_token__isnull=True)
                .values_list("chunk", flat=True)
                .distinct()
            )
        )
        if not chunks:
            eval_run_settle(run_id=run_id)
            continue
        EvalRun.objects.filter(pk=run_id).update(heartbeat_at=timezone.now())
        _enqueue_chunks(run_id, chunks)
        queued += len(chunks)
    return queued


# Cancel, retry -------------------------------------------------------------------------


def eval_run_cancel(*, caller: Caller, run: EvalRun, request: HttpRequest | None = None) -> EvalRun:
    """Workers check between items and stop within seconds; answers already paid for are kept."""
    caller.require_permission(RUN_EVAL, team_id=run.team_id, action="cancel evaluation runs")
    now = timezone.now()
    with transaction.atomic():
        locked = EvalRun.objects.select_for_update().get(pk=run.pk)
        if locked.status not in ACTIVE_RUN_STATUSES:
            raise Conflict(f"Run {run.pk} is {locked.status}; only a queued or running run can be cancelled.")
        if locked.status == RunStatus.QUEUED:
            locked.status, locked.finished_at = RunStatus.CANCELLED, now
        else:
            locked.status = RunStatus.CANCELLING
        locked.save(update_fields=["status", "finished_at", "updated_at"])
        audit_record(
            actor=caller,
            action="eval_run.cancel",
            target_type="evaluations.evalrun",
            target_id=str(run.pk),
            team_id=run.team_id,
            request=request,
        )
    if locked.status == RunStatus.CANCELLING:
        eval_run_settle(run_id=run.pk)
        locked.refresh_from_db()
    return locked


def eval_run_retry_failed(*, caller: Caller, run: EvalRun, request: HttpRequest | None = None) -> int:
    """Run again the results that failed or errored (and any left pending by a cancel); the
    results already done are kept. Returns how many results were queued again."""
    caller.require_permission(RUN_EVAL, team_id=run.team_id, action="retry evaluation runs")
    with transaction.atomic():
        locked = EvalRun.objects.select_for_update().get(pk=run.pk)
        if locked.status in ACTIVE_RUN_STATUSES:
            raise Conflict(f"Run {run.pk} is {locked.status}; wait for it to finish (or cancel it) before retrying.")
        again = EvalResult.objects.filter(run_id=run.pk, status__in=[ResultStatus.FAILED, ResultStatus.ERROR])
        failed_ids = list(again.values_list("pk", flat=True))
        EvalScore.objects.filter(result_id__in=failed_ids).delete()
        reset = again.update(
            status=ResultStatus.PENDING,
            output=None,
            error="",
            call_id="",
            latency_ms=None,
            input_tokens=None,
            output_tokens=None,
            cost_usd=None,
            finished_at=None,
            lease_token=None,
            leased_at=None,
        )
        pending = EvalResult.objects.filter(run_id=run.pk, status=ResultStatus.PENDING)
        count = pending.count()
        if count == 0:
            raise Conflict(f"Run {run.pk} has no failed items to retry.")
        pending.update(lease_token=None, leased_at=None)
        chunks = sorted(set(pending.values_list("chunk", flat=True).distinct()))
        EvalRun.objects.filter(pk=run.pk).update(
            status=RunStatus.RUNNING,
            status_message="",
            failed_count=F("failed_count") - reset,
            finished_at=None,
            heartbeat_at=timezone.now(),
            updated_at=timezone.now(),
        )
        audit_record(
            actor=caller,
            action="eval_run.retry_failed",
            target_type="evaluations.evalrun",
            target_id=str(run.pk),
            team_id=run.team_id,
            after={"results": count},
            request=request,
        )
        transaction.on_commit(lambda: _enqueue_chunks(run.pk, chunks))
    return count
