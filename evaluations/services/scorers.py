"""Writes of configured scorers and brand policies (each change is a new immutable version), and
turning a stored configuration into a scorer. A configuration is checked when it is saved
(evaluations.scorers.registry.config_problem): a bad regex or an invalid schema is a 400 naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest

from compliance.services import audit_record
from core.errors import Conflict, NotFound, ValidationFailed
from evaluations import limits
from evaluations.models import BrandPolicy, BrandPolicyVersion, ScorerConfig, ScorerConfigVersion
from evaluations.permissions import CHANGE_SCORER
from evaluations.scorers import registry
from evaluations.scorers.base import Example, Score, Scorer, ScorerError
from evaluations.services.datasets import _text
from evaluations.types import ScorerKind

if TYPE_CHECKING:
    from accounts.caller import Caller


def _checked_config(*, team_id: int, kind: str, config: Any) -> dict[str, Any]:
    problem = registry.config_problem(kind, config)
    if problem:
        raise ValidationFailed(f"config: {problem}.", code="invalid_scorer_config", param="config")
    config = dict(config)
    if kind == ScorerKind.BRAND_COMPLIANCE:
        # Pinned to a policy version when saved: the same configuration scores the same way later.
        policy = BrandPolicy.objects.filter(team_id=team_id, id=config["policy"]).first()
        if policy is None:
            raise ValidationFailed(f"config.policy: your team has no brand policy {config['policy']}.", param="config")
        number = config.get("policy_version") or policy.current_version
        if not BrandPolicyVersion.objects.filter(policy=policy, number=number).exists():
            raise ValidationFailed(
                f"config.policy_version: policy {policy.pk} has no version {number}.", param="config"
            )
        config["policy_version"] = number
    return config


def scorer_config_create(
    *,
    caller: Caller,
    team_id: int,
    name: str,
    kind: str,
    config: dict[str, Any],
    description: str = "",
    request: HttpRequest | None = None,
) -> ScorerConfig:
    caller.require_permission(CHANGE_SCORER, team_id=team_id, action="configure scorers")
    name = _text(name, param="name", limit=limits.MAX_NAME_CHARS, required=True)
    description = _text(description, param="description", limit=limits.MAX_DESCRIPTION_CHARS)
    checked = _checked_config(team_id=team_id, kind=kind, config=config)
    with transaction.atomic():
        if ScorerConfig.objects.filter(team_id=team_id).count() >= limits.MAX_SCORER_CONFIGS_PER_TEAM:
            raise ValidationFailed(f"Your team has {limits.MAX_SCORER_CONFIGS_PER_TEAM} scorers, the most allowed.")
        try:
            with transaction.atomic():
                scorer = ScorerConfig.objects.create(team_id=team_id, name=name, kind=kind, description=description)
        except IntegrityError:
            raise Conflict(
                f"Your team already has a scorer named {name!r}; choose another name.", param="name"
            ) from None
        ScorerConfigVersion.objects.create(scorer=scorer, number=1, config=checked, author_label=caller.label[:200])
        audit_record(
            actor=caller,
            action="scorer.create",
            target_type="evaluations.scorerconfig",
            target_id=str(scorer.pk),
            team_id=team_id,
            after={"name": name, "kind": kind, "config": checked},
            request=request,
        )
    return scorer


def scorer_config_update(
    *,
    caller: Caller,
    scorer: ScorerConfig,
    config: dict[str, Any] | None = None,
    description: str | None = None,
    request: HttpRequest | None = None,
) -> ScorerConfig:
    """A new configuration is a new version; earlier versions stay as they were."""
    caller.require_permission(CHANGE_SCORER, team_id=scorer.team_id, action="configure scorers")
    with transaction.atomic():
        locked = ScorerConfig.objects.select_for_update().get(pk=scorer.pk)
        fields = ["updated_at"]
        if description is not None:
            locked.description = _text(description, param="description", limit=limits.MAX_DESCRIPTION_CHARS)
            fields.append("description")
        if config is not None:
            checked = _checked_config(team_id=locked.team_id, kind=locked.kind, config=config)
            locked.current_version += 1
            ScorerConfigVersion.objects.create(
                scorer=locked, number=locked.current_version, config=checked, author_label=caller.label[:200]
            )
            fields.append("current_version")
        locked.save(update_fields=fields)
        audit_record(
            actor=caller,
            action="scorer.update",
            target_type="evaluations.scorerconfig",
            target_id=str(scorer.pk),
            team_id=scorer.team_id,
            after={"version": locked.current_version, "config": config, "description_changed": description is not None},
            request=request,
        )
    return locked


def _checked_rules(rules: Any) -> dict[str, Any]:
    problem = registry.brand_rules_problem(rules)
    if problem:
        raise ValidationFailed(f"rules: {problem}.", param="rules")
    return dict(rules)


def brand_policy_create(
    *,
    caller: Caller,
    team_id: int,
    name: str,
    rules: dict[str, Any],
    description: str = "",
    request: HttpRequest | None = None,
) -> BrandPolicy:
    caller.require_permission(CHANGE_SCORER, team_id=team_id, action="write brand policies")
    name = _text(name, param="name", limit=limits.MAX_NAME_CHARS, required=True)
    description = _text(description, param="description", limit=limits.MAX_DESCRIPTION_CHARS)
    checked = _checked_rules(rules)
    with transaction.atomic():
        if BrandPolicy.objects.filter(team_id=team_id).count() >= limits.MAX_BRAND_POLICIES_PER_TEAM:
            raise ValidationFailed(
                f"Your team has {limits.MAX_BRAND_POLICIES_PER_TEAM} brand policies, the most allowed."
            )
        try:
            with transaction.atomic():
                policy = BrandPolicy.objects.create(team_id=team_id, name=name, description=description)
        except IntegrityError:
            raise Conflict(f"Your team already has a brand policy named {name!r}.", param="name") from None
        BrandPolicyVersion.objects.create(policy=policy, number=1, rules=checked, author_label=caller.label[:200])
        audit_record(
            actor=caller,
            action="brand_policy.create",
            target_type="evaluations.brandpolicy",
            target_id=str(policy.pk),
            team_id=team_id,
            after={"name": name, "rules": checked},
            request=request,
        )
    return policy


def brand_policy_update(
    *, caller: Caller, policy: BrandPolicy, rules: dict[str, Any], request: HttpRequest | None = None
) -> BrandPolicyVersion:
    caller.require_permission(CHANGE_SCORER, team_id=policy.team_id, action="write brand policies")
    checked = _checked_rules(rules)
    with transaction.atomic():
        locked = BrandPolicy.objects.select_for_update().get(pk=policy.pk)
        locked.current_version += 1
        version = BrandPolicyVersion.objects.create(
            policy=locked, number=locked.current_version, rules=checked, author_label=caller.label[:200]
        )
        locked.save(update_fields=["current_version", "updated_at"])
        audit_record(
            actor=caller,
            action="brand_policy.update",
            target_type="evaluations.brandpolicy",
            target_id=str(policy.pk),
            team_id=policy.team_id,
            after={"version": version.number, "rules": checked},
            request=request,
        )
    policy.current_version = locked.current_version
    return version


def scorer_for_version(version: ScorerConfigVersion) -> Scorer:
    """The scorer a stored configuration version describes (a brand policy at its pinned version)."""
    scorer = version.scorer
    if scorer.kind != ScorerKind.BRAND_COMPLIANCE:
        return registry.build_scorer(scorer.kind, version.config)
    policy_version = (
        BrandPolicyVersion.objects.select_related("policy")
        .filter(
            policy_id=version.config["policy"], policy__team_id=scorer.team_id, number=version.config["policy_version"]
        )
        .first()
    )
    if policy_version is None:
        raise NotFound(f"The brand policy of scorer {scorer.name!r} no longer exists.")
    label = f"{policy_version.policy.name} v{policy_version.number}"
    return registry.build_scorer(scorer.kind, version.config, brand_rules=policy_version.rules, policy_label=label)


def scorer_for_config(*, team_id: int, kind: str, config: Any) -> Scorer:
    """A scorer from an unsaved configuration (the test endpoint), checked like a saved one."""
    checked = _checked_config(team_id=team_id, kind=kind, config=config)
    if kind != ScorerKind.BRAND_COMPLIANCE:
        return registry.build_scorer(kind, checked)
    policy_version = BrandPolicyVersion.objects.select_related("policy").get(
        policy_id=checked["policy"], number=checked["policy_version"]
    )
    return registry.build_scorer(
        kind,
        checked,
        brand_rules=policy_version.rules,
        policy_label=f"{policy_version.policy.name} v{policy_version.number}",
    )


def score_example(*, scorer: Scorer, example: Example) -> Score | ScorerError:
    """One example scored; a scorer that cannot score returns its ScorerError (never 0 or NaN)."""
    try:
        return scorer.score(example)
    except ScorerError as error:
        return error
