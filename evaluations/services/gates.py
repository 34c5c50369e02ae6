"""Evaluation gates: the evidence a protected label needs before it moves.

A gate names a prompt's protected label, a dataset (at a pinned version, or its current one),
scorers with minimum mean scores, and whether the candidate may show a significant regression
against the version on the label. One function decides (`gate_evaluate`); three entry points ask
it: every label move (prompts.hooks.label_move_check, answered by `label_move_check`), the CI
command `eval_gate` and `POST /api/v1/evaluations/gate/` (both through `gate_check_ci`).

The decision reuses a completed run of each version on the gate's dataset version with the
gate's scorers (whoever started it), waits for one still running, and otherwise starts one:
a label move never blocks for minutes; it answers 409 "pending, retry when it finishes".

A refused move is a `GateCheck`; a second person with deploy permission (not the one whose move
was refused) may override it with a written reason (`gate_override`): audited, then the label
moves. A prompts-as-code sync moves labels inside its own transaction, so what a refused move
writes there is rolled back with it; its runs are started by a task sent at once instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery import current_app
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import roles
from accounts.caller import Caller, TeamGrant
from accounts.types import Role
from compliance.services import audit_record
from core.classification import Clearance
from core.errors import ApplicationError, Conflict, NotFound, PermissionDenied, ValidationFailed
from evaluations import compare, paired, selectors
from evaluations.models import EvalRun, EvaluationGate, GateCheck, ScorerConfigVersion
from evaluations.permissions import RUN_EVAL, SET_GATE
from evaluations.scorers import registry
from evaluations.services.runs import ScorerRequest, TargetRequest, eval_run_create
from evaluations.services.scorers import scorer_for_config
from evaluations.types import ACTIVE_RUN_STATUSES, GateCheckStatus, RunStatus, ScorerKind, TargetKind
from prompts import selectors as prompt_selectors
from prompts import services as prompt_services
from prompts.hooks import LabelMoveRefusal

if TYPE_CHECKING:
    from prompts.models import Prompt, PromptVersion

logger = logging.getLogger(__name__)

PREPARE_TASK = "evaluations.tasks.gate_runs_prepare"
WORST_REGRESSIONS = 10
CODE_FAILED = "evaluation_gate_failed"
CODE_PENDING = "evaluation_gate_pending"


def gate_caller(team_id: int) -> Caller:
    """Who a gate's runs run as: the gate itself, with the team's top clearance (a gate must
    judge every item of its dataset; what callers see of the results follows their own clearance)."""
    return Caller(grants={team_id: TeamGrant(role=Role.ADMIN, clearance=max(Clearance.values))})


# Setting gates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GateScorerRequest:
    """A configured scorer (`scorer_id`, at `version` or its current one) or a built-in `kind`
    with `config`, and the minimum mean score the candidate must reach (None: no minimum)."""

    scorer_id: int | None = None
    version: int | None = None
    kind: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    min_score: float | None = None


def _gate_scorers(*, caller: Caller, team_id: int, requests: Sequence[GateScorerRequest]) -> list[dict[str, Any]]:
    if not requests:
        raise ValidationFailed("scorers: give at least one scorer.", param="scorers")
    entries = []
    for index, request in enumerate(requests):
        param = f"scorers[{index}]"
        if request.min_score is not None and not 0 <= request.min_score <= 1:
            raise ValidationFailed(f"{param}.min_score must be from 0 to 1; got {request.min_score}.", param=param)
        if request.scorer_id is not None:
            scorer = selectors.scorer_get(caller=caller, scorer_id=request.scorer_id)
            if scorer.team_id != team_id:
                raise ValidationFailed(f"{param}: scorer {scorer.pk} belongs to another team.", param=param)
            number = request.version or scorer.current_version
            if not ScorerConfigVersion.objects.filter(scorer=scorer, number=number).exists():
                raise ValidationFailed(f"{param}.version: scorer {scorer.pk} has no version {number}.", param=param)
            entries.append(
                {
                    "name": request.name or scorer.name,
                    "kind": scorer.kind,
                    "config": {},
                    "scorer_config_id": scorer.pk,
                    "scorer_config_version": number,
                    "min_score": request.min_score,
                }
            )
            continue
        if request.kind not in registry.SPECS:
            raise ValidationFailed(
                f"{param}.kind: {request.kind!r} is not a scorer; use one of: {', '.join(registry.SPECS)}.",
                param=f"{param}.kind",
            )
        if request.kind == ScorerKind.LLM_JUDGE:
            raise ValidationFailed(
                f"{param}.kind: configure the judge as a scorer first and name it by id here.", param=param
            )
        try:
            scorer_for_config(team_id=team_id, kind=request.kind, config=request.config)
        except ValidationFailed as error:
            raise ValidationFailed(f"{param}.{error.message}", param=f"{param}.config") from None
        entries.append(
            {
                "name": request.name or request.kind,
                "kind": request.kind,
                "config": dict(request.config),
                "min_score": request.min_score,
            }
        )
    names = [str(entry["name"]) for entry in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValidationFailed(f"scorers: names must differ ({', '.join(repeated)} repeated).", param="scorers")
    return entries


def gate_create(
    *,
    caller: Caller,
    prompt: Prompt,
    label: str,
    dataset_id: Any,
    scorers: Sequence[GateScorerRequest],
    dataset_version: int | None = None,
    model: str = "",
    requires_no_regression: bool = True,
    request: HttpRequest | None = None,
) -> EvaluationGate:
    """Set the gate of a protected label (an active gate already there is replaced)."""
    team_id = prompt.team_id
    caller.require_permission(SET_GATE, team_id=team_id, action="set evaluation gates")
    if not prompt.is_protected(label):
        protected = ", ".join(sorted(str(name) for name in prompt.protected_labels)) or "none"
        raise ValidationFailed(
            f"label: '{label}' is not a protected label of '{prompt.name}' (protected: {protected}); "
            "protect it first, gates guard protected labels only.",
            param="label",
        )
    dataset = selectors.dataset_get(caller=caller, dataset_id=dataset_id)
    if dataset.team_id != team_id:
        raise ValidationFailed(f"dataset: dataset {dataset.pk} belongs to another team.", param="dataset")
    if dataset_version is not None:
        selectors.version_number(dataset, dataset_version, param="dataset_version")
    number = dataset_version or dataset.current_version
    if not selectors.items_at(dataset=dataset, version=number).exists():
        raise ValidationFailed(
            f"dataset: version {number} of dataset {dataset.pk} ({dataset.name!r}) has no items; add items first.",
            param="dataset",
        )
    entries = _gate_scorers(caller=caller, team_id=team_id, requests=scorers)
    with transaction.atomic():
        replaced = list(
            EvaluationGate.objects.select_for_update()
            .filter(prompt_id=prompt.pk, label=label, is_active=True)
            .values_list("pk", flat=True)
        )
        EvaluationGate.objects.filter(pk__in=replaced).update(is_active=False, updated_at=timezone.now())
        gate = EvaluationGate.objects.create(
            team_id=team_id,
            prompt_id=prompt.pk,
            label=label,
            dataset=dataset,
            dataset_version=dataset_version,
            scorers=entries,
            model=model,
            requires_no_regression=requires_no_regression,
            created_by=caller.user,
        )
        audit_record(
            actor=caller,
            action="evaluation_gate.set",
            target_type="evaluations.evaluationgate",
            target_id=str(gate.pk),
            team_id=team_id,
            before={"replaced": replaced} if replaced else None,
            after=_gate_state(gate),
            request=request,
        )
    return gate


def gate_deactivate(*, caller: Caller, gate: EvaluationGate, request: HttpRequest | None = None) -> EvaluationGate:
    caller.require_permission(SET_GATE, team_id=gate.team_id, action="switch off evaluation gates")
    with transaction.atomic():
        changed = EvaluationGate.objects.filter(pk=gate.pk, is_active=True).update(
            is_active=False, updated_at=timezone.now()
        )
        if changed:
            audit_record(
                actor=caller,
                action="evaluation_gate.deactivate",
                target_type="evaluations.evaluationgate",
                target_id=str(gate.pk),
                team_id=gate.team_id,
                before=_gate_state(gate),
                request=request,
            )
    gate.refresh_from_db()
    return gate


def _gate_state(gate: EvaluationGate) -> dict[str, Any]:
    return {
        "prompt": gate.prompt_id,
        "label": gate.label,
        "dataset": gate.dataset_id,
        "dataset_version": gate.dataset_version,
        "scorers": [{"name": entry["name"], "min_score": entry["min_score"]} for entry in gate.scorers],
        "requires_no_regression": gate.requires_no_regression,
    }


# Deciding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateScorerResult:
    name: str
    min_score: float | None
    candidate_mean: float | None
    current_mean: float | None
    comparison: compare.ScorerComparison | None  # None without a current version
    passed: bool


@dataclass
class GateVerdict:
    gate: EvaluationGate
    status: str  # GateCheckStatus: pending, passed or failed
    candidate: PromptVersion
    current: PromptVersion | None
    dataset_version: int
    candidate_run: EvalRun | None
    current_run: EvalRun | None
    reasons: list[str] = field(default_factory=list)
    scorers: list[GateScorerResult] = field(default_factory=list)
    worst_regressions: list[compare.ItemChange] = field(default_factory=list)
    started_runs: list[int] = field(default_factory=list)
    check: GateCheck | None = None


def gate_dataset_version(gate: EvaluationGate) -> int:
    return gate.dataset_version or gate.dataset.current_version


def _covers(run: EvalRun, gate: EvaluationGate) -> bool:
    """Whether `run` scored with every scorer of the gate (same name, kind and settings)."""
    by_name = {entry["name"]: entry for entry in run.scorers}
    for wanted in gate.scorers:
        found = by_name.get(wanted["name"])
        if found is None or found.get("kind") != wanted["kind"]:
            return False
        if wanted.get("scorer_config_id") is not None:
            if (found.get("scorer_config_id"), found.get("scorer_config_version")) != (
                wanted["scorer_config_id"],
                wanted["scorer_config_version"],
            ):
                return False
        elif any(found.get("config", {}).get(key) != value for key, value in wanted["config"].items()):
            return False
    return True


def gate_run_for(*, gate: EvaluationGate, version: PromptVersion, dataset_version: int) -> EvalRun | None:
    """The newest completed run of `version` that the gate can use, else the newest still running."""
    candidates = EvalRun.objects.filter(
        team_id=gate.team_id,
        dataset_id=gate.dataset_id,
        dataset_version=dataset_version,
        target_kind=TargetKind.PROMPT,
        target__prompt_id=version.prompt_id,
        target__version=version.number,
        status__in=[RunStatus.COMPLETED, *ACTIVE_RUN_STATUSES],
    ).order_by("-id")
    if gate.model:
        candidates = candidates.filter(target__model=gate.model)
    usable = [run for run in candidates[:50] if _covers(run, gate)]
    completed = [run for run in usable if run.status == RunStatus.COMPLETED]
    chosen = completed or usable
    return chosen[0] if chosen else None


def _start_run(*, gate: EvaluationGate, version: PromptVersion, dataset_version: int) -> EvalRun:
    scorers = [
        ScorerRequest(scorer_id=entry["scorer_config_id"], version=entry["scorer_config_version"], name=entry["name"])
        if entry.get("scorer_config_id") is not None
        else ScorerRequest(kind=entry["kind"], config=dict(entry["config"]), name=entry["name"])
        for entry in gate.scorers
    ]
    prompt_name = gate.prompt.name
    return eval_run_create(
        caller=gate_caller(gate.team_id),
        dataset_id=gate.dataset_id,
        dataset_version=dataset_version,
        target=TargetRequest(kind=TargetKind.PROMPT, prompt=prompt_name, version=version.number, model=gate.model),
        scorers=scorers,
        name=f"gate {gate.pk}: {prompt_name} v{version.number}",
    )


def gate_runs_prepare(*, gate_id: int, version_ids: Sequence[int]) -> list[int]:
    """Start the runs a gate lacks for these versions (the task behind a refused move made inside
    a transaction). Versions that never committed are skipped. Returns the runs started."""
    gate = EvaluationGate.objects.select_related("dataset", "prompt").filter(pk=gate_id, is_active=True).first()
    if gate is None:
        return []
    started = []
    dataset_version = gate_dataset_version(gate)
    versions = prompt_selectors.version_list(prompt=gate.prompt).filter(id__in=version_ids)
    for version in versions:
        if gate_run_for(gate=gate, version=version, dataset_version=dataset_version) is None:
            started.append(_start_run(gate=gate, version=version, dataset_version=dataset_version).pk)
    return started


def _worst(
    *, caller: Caller | None, current_run: EvalRun, candidate_run: EvalRun, per_item: dict[str, Any]
) -> list[compare.ItemChange]:
    viewer = caller or gate_caller(candidate_run.team_id)
    regressions, _ = compare.item_changes(
        caller=viewer,
        baseline=current_run,
        candidate=candidate_run,
        per_item=per_item,
        limit=WORST_REGRESSIONS,
    )
    return regressions


def gate_evaluate(
    *,
    gate: EvaluationGate,
    candidate: PromptVersion,
    current: PromptVersion | None,
    caller: Caller | None = None,
    start_runs: bool = True,
) -> GateVerdict:
    """The gate's verdict on moving its label from `current` to `candidate`: pending while a run
    is missing or unfinished (starting the missing ones when `start_runs`), else passed or failed
    with a reason per unmet requirement. In a transaction, missing runs are started by a task."""
    dataset_version = gate_dataset_version(gate)
    verdict = GateVerdict(
        gate=gate,
        status=GateCheckStatus.PENDING,
        candidate=candidate,
        current=current,
        dataset_version=dataset_version,
        candidate_run=gate_run_for(gate=gate, version=candidate, dataset_version=dataset_version),
        current_run=(
            gate_run_for(gate=gate, version=current, dataset_version=dataset_version)
            if current is not None and gate.requires_no_regression
            else None
        ),
    )
    needed = [candidate] + ([current] if current is not None and gate.requires_no_regression else [])
    missing = [
        version
        for version, run in zip(needed, [verdict.candidate_run, verdict.current_run], strict=False)
        if run is None
    ]
    if missing and start_runs:
        if transaction.get_connection().in_atomic_block:
            # The caller's transaction may roll back (a refused sync does): the task outlives it.
            current_app.send_task(PREPARE_TASK, args=[gate.pk, [version.pk for version in missing]])
        else:
            for version in missing:
                run = _start_run(gate=gate, version=version, dataset_version=dataset_version)
                verdict.started_runs.append(run.pk)
                if version.pk == candidate.pk:
                    verdict.candidate_run = run
                else:
                    verdict.current_run = run
    runs = [run for run in (verdict.candidate_run, verdict.current_run) if run is not None]
    if missing or any(run.status != RunStatus.COMPLETED for run in runs):
        waiting = ", ".join(f"run {run.pk} ({run.status}, {run.done_count}/{run.total_count})" for run in runs)
        verdict.reasons = [f"waiting for {waiting or 'the gate runs to start'}"]
        return verdict
    candidate_run = verdict.candidate_run
    assert candidate_run is not None  # the missing-run branch returned above
    candidate_means = {
        name: (sum(scores.values()) / len(scores) if scores else None)
        for name, scores in compare._item_scores(candidate_run).items()
    }
    comparisons: dict[str, compare.ScorerComparison] = {}
    if verdict.current_run is not None:
        pair, per_item = compare.run_pair_comparison(verdict.current_run, candidate_run)
        comparisons = {row.scorer: row for row in pair.scorers}
        verdict.worst_regressions = _worst(
            caller=caller, current_run=verdict.current_run, candidate_run=candidate_run, per_item=per_item
        )
    for entry in gate.scorers:
        name, minimum = entry["name"], entry["min_score"]
        mean = candidate_means.get(name)
        row = comparisons.get(name)
        passed = True
        if mean is None:
            passed = False
            verdict.reasons.append(f"{name}: version {candidate.number} could not be scored on any item")
        elif minimum is not None and mean < minimum:
            passed = False
            verdict.reasons.append(f"{name}: mean {mean:.3f} is below the minimum {minimum:.3f}")
        if row is not None and row.verdict == paired.WORSE:
            passed = False
            verdict.reasons.append(f"{name}: {_regression_text(row, candidate, current)}")
        verdict.scorers.append(
            GateScorerResult(
                name=name,
                min_score=minimum,
                candidate_mean=mean,
                current_mean=row.baseline_mean if row is not None else None,
                comparison=row,
                passed=passed,
            )
        )
    verdict.status = GateCheckStatus.FAILED if verdict.reasons else GateCheckStatus.PASSED
    return verdict


def _regression_text(row: compare.ScorerComparison, candidate: PromptVersion, current: PromptVersion | None) -> str:
    against = f"version {current.number}" if current is not None else "the current version"
    text = f"version {candidate.number} is worse than {against}: mean difference {row.difference:+.3f}"
    if row.interval is not None:
        text += f" (95% CI {row.interval.low:+.3f} to {row.interval.high:+.3f})"
    if row.mcnemar is not None:
        text += (
            f", pass rate {row.baseline_pass_rate:.0%} -> {row.candidate_pass_rate:.0%} "
            f"(McNemar p = {row.mcnemar.p_value:.3g})"
        )
    return text + f", {row.pairs} items"


def gate_check_record(*, verdict: GateVerdict, caller: Caller | None, source: str) -> GateCheck:
    check = GateCheck.objects.create(
        gate=verdict.gate,
        candidate_version_id=verdict.candidate.pk,
        current_version_id=verdict.current.pk if verdict.current is not None else None,
        dataset_version=verdict.dataset_version,
        candidate_run=verdict.candidate_run,
        current_run=verdict.current_run,
        status=verdict.status,
        reasons=verdict.reasons,
        source=source,
        requested_by=caller.user if caller is not None else None,
        requested_by_label=(caller.label if caller is not None else "prompts_sync")[:200],
    )
    verdict.check = check
    return check


def active_gate(*, prompt_id: int, label: str) -> EvaluationGate | None:
    return (
        EvaluationGate.objects.select_related("dataset", "prompt")
        .filter(prompt_id=prompt_id, label=label, is_active=True)
        .first()
    )


# The label move's question -------------------------------------------------------------


def label_move_check(
    *, caller: Caller | None, prompt: Prompt, label: str, version: PromptVersion, current: PromptVersion | None
) -> LabelMoveRefusal | None:
    """The receiver of prompts.hooks.label_move_check (registered in evaluations/apps.py)."""
    gate = active_gate(prompt_id=prompt.pk, label=label)
    if gate is None:
        return None
    overridden = GateCheck.objects.filter(
        gate=gate,
        candidate_version_id=version.pk,
        current_version_id=current.pk if current is not None else None,
        status=GateCheckStatus.OVERRIDDEN,
    ).exists()
    if overridden:
        return None
    try:
        verdict = gate_evaluate(gate=gate, candidate=version, current=current, caller=caller)
    except ApplicationError as error:  # a run could not start (e.g. the team's run limit)
        return LabelMoveRefusal(
            message=f"The evaluation gate {gate.pk} on '{label}' could not start its runs: {error.message}",
            code=CODE_PENDING,
        )
    check = gate_check_record(verdict=verdict, caller=caller, source="label_move")
    gate_name = f"The evaluation gate {gate.pk} on '{label}' of '{prompt.name}'"
    if verdict.status == GateCheckStatus.PASSED:
        return None
    if verdict.status == GateCheckStatus.PENDING:
        started = (
            f"started gate runs {', '.join(map(str, verdict.started_runs))}"
            if verdict.started_runs
            else "has started (or is waiting for) its runs"
        )
        if not verdict.started_runs and transaction.get_connection().in_atomic_block:
            started += (
                "; a version created by this same sync is rolled back with it, so sync without the label "
                "first, then with it"
            )
        return LabelMoveRefusal(
            message=(
                f"{gate_name} has no finished run for version {version.number} yet: it {started} "
                f"({'; '.join(verdict.reasons)}). Nothing moved; retry when they finish (check {check.pk})."
            ),
            code=CODE_PENDING,
        )
    return LabelMoveRefusal(
        message=(
            f"{gate_name} refused version {version.number}: {'; '.join(verdict.reasons)}. Nothing moved. "
            f"A second person with deploy permission may override it with a reason "
            f"(POST /api/v1/evaluation-gates/checks/{check.pk}/override/)."
        ),
        code=CODE_FAILED,
    )


# Override --------------------------------------------------------------------------------


def gate_override(*, caller: Caller, check: GateCheck, reason: str, request: HttpRequest | None = None) -> GateCheck:
    """A second person with deploy permission lets a refused move through, with a written reason:
    audited, then the label moves (the gate lets this exact move pass)."""
    gate = check.gate
    prompt = gate.prompt
    caller.require_permission(
        roles.DEPLOY_PROMPT, team_id=gate.team_id, obj=prompt, action=f"override the evaluation gate on '{gate.label}'"
    )
    if caller.user is None:
        raise PermissionDenied("A gate is overridden by a person signed in, not by an API key.")
    if check.requested_by_id is not None and check.requested_by_id == caller.user.pk:
        raise PermissionDenied(
            "You asked for this move; a second person with deploy permission must override the gate.",
            code="second_person_required",
        )
    if not reason.strip():
        raise ValidationFailed("reason: write why the gate is overridden.", param="reason")
    if check.status not in (GateCheckStatus.FAILED, GateCheckStatus.PENDING):
        raise Conflict(f"Gate check {check.pk} is {check.status}; only a refused move can be overridden.")
    current_on_label = prompt_selectors.label_list(prompt=prompt).filter(name=gate.label).first()
    if (current_on_label.version_id if current_on_label else None) != check.current_version_id:
        raise Conflict(
            f"The label '{gate.label}' has moved since check {check.pk}; move it again to get a new decision.",
            param="label",
        )
    with transaction.atomic():
        updated = GateCheck.objects.filter(
            pk=check.pk, status__in=[GateCheckStatus.FAILED, GateCheckStatus.PENDING]
        ).update(
            status=GateCheckStatus.OVERRIDDEN,
            overridden_by=caller.user,
            override_reason=reason,
            overridden_at=timezone.now(),
        )
        if not updated:
            raise Conflict(f"Gate check {check.pk} was decided at the same time; reload it.")
        audit_record(
            actor=caller,
            action="evaluation_gate.override",
            target_type="evaluations.gatecheck",
            target_id=str(check.pk),
            team_id=gate.team_id,
            before={"status": check.status, "reasons": check.reasons},
            after={
                "status": GateCheckStatus.OVERRIDDEN,
                "reason": reason,
                "requested_by": check.requested_by_label,
                "label": gate.label,
                "version": check.candidate_version.number,
            },
            request=request,
        )
        prompt_services.label_move(
            caller=caller,
            prompt=prompt,
            label=gate.label,
            version=check.candidate_version,
            reason=f"evaluation gate overridden: {reason}",
        )
    check.refresh_from_db()
    return check


# CI ----------------------------------------------------------------------------------------


def gate_check_ci(
    *,
    caller: Caller | None,
    prompt_name: str,
    candidate_version: int,
    against_label: str,
    team_id: int | None = None,
    dataset_id: Any = None,
    start_runs: bool = True,
    record: bool = True,
) -> GateVerdict:
    """What `eval_gate` and POST /api/v1/evaluations/gate/ answer: the active gate of the label
    judging `candidate_version` against the version on the label. `caller=None` is the command
    (an operator; `team_id` then names the team). `dataset_id` must be the gate's dataset (a
    check against a dataset the gate does not use would not be the gate's verdict)."""
    viewer = caller if caller is not None else gate_caller(team_id) if team_id is not None else None
    if viewer is None:
        raise ValidationFailed("team: name the team of the prompt.", param="team")
    prompt = prompt_selectors.prompt_get(caller=viewer, name=prompt_name, team_id=team_id)
    if caller is not None:
        caller.require_permission(RUN_EVAL, team_id=prompt.team_id, action="check evaluation gates")
    version = prompt_selectors.version_get(prompt=prompt, number=candidate_version)
    gate = active_gate(prompt_id=prompt.pk, label=against_label)
    if gate is None:
        raise NotFound(
            f"'{prompt.name}' has no active evaluation gate on '{against_label}'; an admin sets one first.",
            param="against",
        )
    if dataset_id not in (None, "") and str(dataset_id) not in (str(gate.dataset_id), gate.dataset.name):
        raise ValidationFailed(
            f"dataset: the gate on '{against_label}' uses dataset {gate.dataset_id} ({gate.dataset.name!r}), "
            f"not {dataset_id!r}.",
            param="dataset",
        )
    on_label = prompt_selectors.label_list(prompt=prompt).filter(name=against_label).select_related("version").first()
    current = on_label.version if on_label is not None else None
    verdict = gate_evaluate(gate=gate, candidate=version, current=current, caller=caller, start_runs=start_runs)
    if record:
        gate_check_record(verdict=verdict, caller=caller, source="ci")
    return verdict
