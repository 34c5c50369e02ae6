"""Writes for prompts, versions, labels and experiments. Views validate; these act.

`caller=None` means trusted provisioning (the prompts_sync command run by an operator).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import roles
from accounts.caller import Caller
from compliance.services import audit_record
from core.errors import Conflict, NotFound, ValidationFailed
from prompts import assignment, content, hooks, policies
from prompts.cache import generation_bump
from prompts.models import (
    Experiment,
    ExperimentExposure,
    ExperimentStatus,
    ExperimentVariant,
    LabelAction,
    LabelHistory,
    Prompt,
    PromptLabel,
    PromptVersion,
)

if TYPE_CHECKING:
    from accounts.models import Team

logger = logging.getLogger(__name__)


def _audit(
    *,
    caller: Caller | None,
    action: str,
    prompt: Prompt,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Version creation, label moves and rollbacks, experiment start and stop: on the audit trail."""
    audit_record(
        actor=caller,
        action=action,
        target_type="prompt",
        target_id=str(prompt.id),
        team_id=prompt.team_id,
        before=before,
        after=after,
        metadata={"prompt": prompt.name},
    )


def _actor_fields(caller: Caller | None, *, fallback: str) -> dict[str, Any]:
    if caller is None:
        return {"actor_user": None, "actor_api_key": None, "actor_label": fallback}
    return {"actor_user": caller.user, "actor_api_key": caller.api_key, "actor_label": caller.label}


# Prompts -------------------------------------------------------------------------------


def prompt_create(
    *,
    caller: Caller | None,
    team: Team,
    name: str,
    description: str = "",
    tags: Sequence[str] = (),
    protected_labels: Sequence[str] | None = None,
) -> Prompt:
    if caller is not None:
        caller.require_permission(roles.ADD_PROMPT, team_id=team.id, action="create prompts")
    content.validate_prompt_name(name)
    fields: dict[str, Any] = {"description": description, "tags": content.validate_tags(list(tags))}
    if protected_labels is not None:
        fields["protected_labels"] = [content.validate_label_name(label) for label in protected_labels]
    try:
        with transaction.atomic():
            prompt = Prompt.objects.create(team=team, name=name, **fields)
    except IntegrityError:
        raise Conflict(
            f"{team.name} already has a prompt named '{name}'; add a version to it instead.", param="name"
        ) from None
    logger.info("prompt created", extra={"prompt_id": prompt.id, "team_id": team.id})
    return prompt


def prompt_update(
    *,
    caller: Caller | None,
    prompt: Prompt,
    description: str | None = None,
    tags: Sequence[str] | None = None,
    protected_labels: Sequence[str] | None = None,
) -> Prompt:
    if caller is not None:
        caller.require_permission(roles.CHANGE_PROMPT, team_id=prompt.team_id, obj=prompt, action="change this prompt")
        if protected_labels is not None:
            # Unprotecting production would let anyone with edit rights deploy: only deployers decide.
            caller.require_permission(
                roles.DEPLOY_PROMPT, team_id=prompt.team_id, obj=prompt, action="change which labels are protected"
            )
    if description is not None:
        prompt.description = description
    if tags is not None:
        prompt.tags = content.validate_tags(list(tags))
    if protected_labels is not None:
        prompt.protected_labels = sorted({content.validate_label_name(label) for label in protected_labels})
    prompt.save()
    return prompt


# Versions ------------------------------------------------------------------------------


def prompt_version_create(
    *,
    caller: Caller | None,
    prompt: Prompt,
    messages: Any,
    params: Any = None,
    variables: Any = None,
    context_budget: Any = None,
    classification: Any = None,
    commit_message: str = "",
) -> tuple[PromptVersion, bool]:
    """Create the next version, or return the newest one unchanged when the content is identical.

    `classification` is a level name or Clearance value (default internal); it is part of the
    content, so the same messages at another level are a new version. Returns (version, created).
    """
    if caller is not None:
        caller.require_permission(
            roles.CHANGE_PROMPT, team_id=prompt.team_id, obj=prompt, action="add versions to this prompt"
        )
    version_content = content.validate_content(
        messages=messages,
        params=params,
        variables=variables,
        context_budget=context_budget,
        classification=classification,
    )
    content_hash = version_content.content_hash
    with transaction.atomic():
        # Lock the prompt row: numbers are assigned one at a time.
        Prompt.objects.select_for_update().filter(pk=prompt.pk).first()
        newest = PromptVersion.objects.filter(prompt=prompt).order_by("-number").first()
        if newest is not None and newest.content_hash == content_hash:
            return newest, False
        version = PromptVersion.objects.create(
            prompt=prompt,
            number=(newest.number + 1) if newest is not None else 1,
            messages=version_content.messages,
            params=version_content.params,
            variables=version_content.variables,
            context_budget=version_content.context_budget,
            classification=version_content.classification,
            commit_message=commit_message,
            author=caller.user if caller is not None else None,
            author_api_key=caller.api_key if caller is not None else None,
            author_label=caller.label if caller is not None else "prompts_sync",
            content_hash=content_hash,
        )
        Prompt.objects.filter(pk=prompt.pk).update(updated_at=timezone.now())
        generation_bump(team_id=prompt.team_id, name=prompt.name)  # `latest` moved
        _audit(
            caller=caller,
            action="prompt.version_create",
            prompt=prompt,
            after={
                "version": version.number,
                "content_hash": content_hash,
                "classification": version.classification_name,
                "commit_message": commit_message,
            },
        )
    logger.info("prompt version created", extra={"prompt_id": prompt.id, "version": version.number})
    return version, True


# Labels --------------------------------------------------------------------------------


def label_move(
    *,
    caller: Caller | None,
    prompt: Prompt,
    label: str,
    version: PromptVersion,
    reason: str = "",
    action: str = LabelAction.MOVE,
    actor_fallback: str = "prompts_sync",
) -> PromptLabel:
    """Point `label` at `version`, recording who, from, to, when and why."""
    content.validate_label_name(label)
    if version.prompt_id != prompt.id:
        raise ValidationFailed(f"Version {version.number} belongs to another prompt.", param="version")
    policies.promotion_check(caller=caller, prompt=prompt, label=label, version=version)
    # Asked before the transaction: what the answer records (a gate's check, the runs it starts)
    # must stay when the move is refused.
    seen_version_id = PromptLabel.objects.filter(prompt=prompt, name=label).values_list("version_id", flat=True).first()
    if seen_version_id != version.id:
        current_version = PromptVersion.objects.filter(id=seen_version_id).first() if seen_version_id else None
        refusal = hooks.label_move_check(
            caller=caller, prompt=prompt, label=label, version=version, current=current_version
        )
        if refusal is not None:
            raise Conflict(refusal.message, code=refusal.code, param="label")
    with transaction.atomic():
        current = PromptLabel.objects.select_for_update().filter(prompt=prompt, name=label).first()
        if current is not None and current.version_id == version.id:
            return current
        if (current.version_id if current is not None else None) != seen_version_id:
            raise Conflict(f"The label '{label}' was moved at the same time; try again.", param="label")
        previous_version = current.version if current is not None else None
        if current is None:
            try:
                with transaction.atomic():
                    current = PromptLabel.objects.create(prompt=prompt, name=label, version=version)
            except IntegrityError:
                raise Conflict(f"The label '{label}' was moved at the same time; try again.", param="label") from None
        else:
            current.version = version
            current.save(update_fields=["version", "updated_at"])
        LabelHistory.objects.create(
            prompt=prompt,
            label=label,
            action=action,
            from_version=previous_version,
            to_version=version,
            reason=reason,
            **_actor_fields(caller, fallback=actor_fallback),
        )
        generation_bump(team_id=prompt.team_id, name=prompt.name)
        _audit(
            caller=caller,
            action=f"prompt.label_{action}",
            prompt=prompt,
            before={"label": label, "version": previous_version.number if previous_version else None},
            after={"label": label, "version": version.number, "reason": reason},
        )
        # Cached answers of this prompt die with the move (gateway.semantic_cache receives it).
        transaction.on_commit(lambda: hooks.label_moved(prompt_id=prompt.id))
    logger.info(
        "prompt label moved",
        extra={
            "prompt_id": prompt.id,
            "label": label,
            "from_version": previous_version.number if previous_version else None,
            "to_version": version.number,
            "actor": caller.label if caller else actor_fallback,
        },
    )
    return current


def label_rollback(*, caller: Caller | None, prompt: Prompt, label: str, reason: str = "") -> PromptLabel:
    """Move `label` back to the version it pointed at before its latest move."""
    last = (
        LabelHistory.objects.filter(prompt=prompt, label=label).select_related("from_version").order_by("-id").first()
    )
    if last is None:
        raise NotFound(f"'{prompt.name}' has no label named '{label}'.", param="label")
    if last.from_version is None:
        raise Conflict(
            f"The label '{label}' has pointed only at version {last.to_version.number}; "
            "there is nothing to roll back to.",
            param="label",
        )
    return label_move(
        caller=caller,
        prompt=prompt,
        label=label,
        version=last.from_version,
        reason=reason or f"rollback to version {last.from_version.number}",
        action=LabelAction.ROLLBACK,
    )


# Experiments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantSpec:
    name: str
    version: PromptVersion
    weight: int


def experiment_create(
    *,
    caller: Caller,
    prompt: Prompt,
    name: str,
    variants: Sequence[VariantSpec],
    label: str = "production",
    segment: Mapping[str, str] | None = None,
) -> Experiment:
    caller.require_permission(roles.CHANGE_PROMPT, team_id=prompt.team_id, obj=prompt, action="create experiments")
    content.validate_label_name(label)
    if len(variants) < 2:
        raise ValidationFailed("An experiment needs at least two variants.", param="variants")
    names = [variant.name for variant in variants]
    if len(set(names)) != len(names):
        raise ValidationFailed("Variant names must be unique.", param="variants")
    for variant in variants:
        if variant.version.prompt_id != prompt.id:
            raise ValidationFailed(f"Version {variant.version.number} belongs to another prompt.", param="variants")
        if variant.weight < 1:
            raise ValidationFailed("Variant weights must be positive integers.", param="variants")
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                prompt=prompt, name=name, label=label, segment=dict(segment or {}), created_by_label=caller.label
            )
            ExperimentVariant.objects.bulk_create(
                ExperimentVariant(experiment=experiment, name=v.name, version=v.version, weight=v.weight)
                for v in variants
            )
    except IntegrityError:
        raise Conflict(f"'{prompt.name}' already has an experiment named '{name}'.", param="name") from None
    return experiment


def experiment_start(*, caller: Caller, experiment: Experiment) -> Experiment:
    prompt = experiment.prompt
    # Serving a variant to production traffic is a deployment of it.
    policies.promotion_check(
        caller=caller, prompt=prompt, label=experiment.label, version=experiment.variants.all()[0].version
    )
    if experiment.status != ExperimentStatus.DRAFT:
        raise Conflict(f"The experiment is {experiment.status}; only a draft can be started.", param="status")
    try:
        with transaction.atomic():
            experiment.status = ExperimentStatus.RUNNING
            experiment.started_at = timezone.now()
            experiment.save(update_fields=["status", "started_at", "updated_at"])
            _audit(
                caller=caller,
                action="prompt.experiment_start",
                prompt=prompt,
                after={"experiment": experiment.name, "label": experiment.label},
            )
    except IntegrityError:
        raise Conflict(
            f"Another experiment is already running on the label '{experiment.label}'; stop it first.", param="label"
        ) from None
    generation_bump(team_id=prompt.team_id, name=prompt.name)
    return experiment


def experiment_stop(
    *, caller: Caller, experiment: Experiment, winner: str | None = None, reason: str = ""
) -> Experiment:
    prompt = experiment.prompt
    if experiment.status != ExperimentStatus.RUNNING:
        raise Conflict(f"The experiment is {experiment.status}; only a running experiment can be stopped.")
    winning = None
    if winner is not None:
        winning = next((variant for variant in experiment.variants.all() if variant.name == winner), None)
        if winning is None:
            names = ", ".join(variant.name for variant in experiment.variants.all())
            raise ValidationFailed(f"No variant named '{winner}'; the variants are {names}.", param="winner")
        policies.promotion_check(caller=caller, prompt=prompt, label=experiment.label, version=winning.version)
    else:
        caller.require_permission(roles.CHANGE_PROMPT, team_id=prompt.team_id, obj=prompt, action="stop experiments")
    with transaction.atomic():
        experiment.status = ExperimentStatus.STOPPED
        experiment.stopped_at = timezone.now()
        experiment.winner = winning
        experiment.save(update_fields=["status", "stopped_at", "winner", "updated_at"])
        _audit(
            caller=caller,
            action="prompt.experiment_stop",
            prompt=prompt,
            after={"experiment": experiment.name, "winner": winning.name if winning else None, "reason": reason},
        )
        if winning is not None:
            label_move(
                caller=caller,
                prompt=prompt,
                label=experiment.label,
                version=winning.version,
                reason=reason or f"winner of experiment '{experiment.name}' (variant {winning.name})",
                action=LabelAction.EXPERIMENT_WINNER,
            )
        generation_bump(team_id=prompt.team_id, name=prompt.name)
    return experiment


def experiment_exposure_record(
    *,
    caller: Caller | None,
    experiment: Experiment,
    subject: str,
    call_id: str = "",
    latency_ms: float | None = None,
    cost_usd: float | None = None,
    score: float | None = None,
    is_success: bool | None = None,
) -> ExperimentExposure:
    """Record that `subject` was served its (sticky) variant for one call. The gateway calls this."""
    prompt = experiment.prompt
    if caller is not None:
        caller.require_permission(
            roles.USE_PROMPT, team_id=prompt.team_id, obj=prompt, action="record experiment exposures"
        )
    if not subject:
        raise ValidationFailed("subject is required: the end-user id, else a session id.", param="subject")
    if experiment.status == ExperimentStatus.DRAFT:
        raise Conflict("The experiment has not started; start it before recording exposures.")
    variants = list(experiment.variants.all())
    chosen = assignment.assign(experiment_id=experiment.id, subject=subject, weights=[v.weight for v in variants])
    return ExperimentExposure.objects.create(
        experiment=experiment,
        variant=variants[chosen],
        subject=subject,
        call_id=call_id,
        latency_ms=latency_ms,
        cost_usd=cost_usd,
        score=score,
        is_success=is_success,
    )


# Prompts as code -----------------------------------------------------------------------


def prompt_files_sync(
    *, team: Team, files: Sequence[Any], label: str | None = None, is_dry_run: bool = False
) -> list[str]:
    """Bring the registry in line with already validated prompt files (yaml_files.PromptFile).

    Creates versions only for changed content; optionally points `label` at each prompt's
    newest version. All or nothing: one transaction. Returns what was (or would be) done.
    """
    if label is not None:
        content.validate_label_name(label)
    verb = "would " if is_dry_run else ""
    report: list[str] = []
    with transaction.atomic():
        existing = {prompt.name: prompt for prompt in Prompt.objects.filter(team=team)}
        for prompt_file in files:
            prompt = existing.get(prompt_file.name)
            if prompt is None:
                report.append(f"{prompt_file.name}: {verb}create prompt")
                if not is_dry_run:
                    prompt = prompt_create(
                        caller=None,
                        team=team,
                        name=prompt_file.name,
                        description=prompt_file.description,
                        tags=prompt_file.tags,
                    )
            elif prompt.description != prompt_file.description or prompt.tags != prompt_file.tags:
                report.append(f"{prompt_file.name}: {verb}update description and tags")
                if not is_dry_run:
                    prompt_update(
                        caller=None, prompt=prompt, description=prompt_file.description, tags=prompt_file.tags
                    )
            newest = (
                PromptVersion.objects.filter(prompt=prompt).order_by("-number").first() if prompt is not None else None
            )
            if newest is not None and newest.content_hash == prompt_file.version.content_hash:
                report.append(f"{prompt_file.name}: unchanged (version {newest.number})")
                target = newest
            else:
                number = newest.number + 1 if newest is not None else 1
                report.append(f"{prompt_file.name}: {verb}create version {number}")
                target = None
                if not is_dry_run and prompt is not None:
                    target, _ = prompt_version_create(
                        caller=None,
                        prompt=prompt,
                        messages=prompt_file.version.messages,
                        params=prompt_file.version.params,
                        variables=prompt_file.version.variables,
                        context_budget=prompt_file.version.context_budget,
                        classification=prompt_file.version.classification,
                        commit_message=prompt_file.commit_message,
                    )
            if label is not None:
                current = (
                    PromptLabel.objects.filter(prompt=prompt, name=label).values_list("version_id", flat=True).first()
                    if prompt is not None
                    else None
                )
                if target is not None and current == target.id:
                    continue
                shown = target.number if target is not None else "the new version"
                report.append(f"{prompt_file.name}: {verb}move label {label} to version {shown}")
                if not is_dry_run and prompt is not None and target is not None:
                    label_move(caller=None, prompt=prompt, label=label, version=target, reason="prompts_sync")
    return report
