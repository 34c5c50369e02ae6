"""Guardrail writes: an application's policy, a team's classification rules and data sources.

Each write checks the caller's permission, changes the row in a transaction, invalidates what
every process caches of it (`state`) and goes on the audit trail with before and after (a data
source's text only as "changed", never the text).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import transaction

from accounts import roles
from accounts.caller import Caller
from compliance.guardrails import classification
from compliance.guardrails.models import ClassificationRule, DataSource, GuardrailPolicy
from compliance.guardrails.services.checks import level_name
from compliance.guardrails.services.state import policies, team_states
from compliance.guardrails.types import LeakAction
from compliance.services import VALUE_CHANGED, audit_change, secret_state
from core.errors import PermissionDenied, ValidationFailed

if TYPE_CHECKING:
    from accounts.models import Application, Team

TeamObjectT = TypeVar("TeamObjectT", ClassificationRule, DataSource)


_NEVER_AUDITED = frozenset({"text", "fingerprints", "text_sha256"})  # a data source's content


def _audit_state(values: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if values is None else {name: value for name, value in values.items() if name not in _NEVER_AUDITED}


def _audit(
    *,
    caller: Caller,
    action: str,
    target_type: str,
    target_id: int,
    team_id: int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Guardrail, classification and data-source changes go on the audit trail with before and
    after of what changed (a data source's text only as "changed", never the text)."""
    audit_change(
        actor=caller,
        action=action,
        target_type=target_type,
        target_id=target_id,
        team_id=team_id,
        before=_audit_state(before),
        after=_audit_state(after),
    )


_POLICY_FIELDS = (
    "pii_input",
    "pii_output",
    "pii_entities",
    "restore_pii_in_response",
    "injection",
    "injection_threshold",
)
_RULE_FIELDS = ("name", "kind", "level", "entities", "pattern", "keywords", "is_enabled")
_SOURCE_FIELDS = ("name", "description", "classification", "leak_action", "leak_share")


def _state(instance: Any, names: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in names}


def _given(**values: Any) -> dict[str, Any]:
    """The fields an update names: None keeps a field's current value."""
    return {name: value for name, value in values.items() if value is not None}


def guardrail_policy_update(
    *,
    caller: Caller,
    application: Application,
    pii_input: str | None = None,
    pii_output: str | None = None,
    pii_entities: Sequence[str] | None = None,
    restore_pii_in_response: bool | None = None,
    injection_action: str | None = None,
    injection_threshold: float | None = None,
) -> GuardrailPolicy:
    """Change the given fields (None keeps a field's value). The entry point validated them:
    actions among PiiAction's and InjectionAction's values, entities among PII_ENTITIES, the
    threshold in 0..1."""
    caller.require_permission(
        roles.CHANGE_GUARDRAIL_POLICY,
        team_id=application.team_id,
        action="change this application's guardrails",
    )
    changes = _given(
        pii_input=pii_input,
        pii_output=pii_output,
        pii_entities=None if pii_entities is None else list(dict.fromkeys(pii_entities)),  # each type once
        restore_pii_in_response=restore_pii_in_response,
        injection=injection_action,
        injection_threshold=injection_threshold,
    )
    with transaction.atomic():
        policy, _ = GuardrailPolicy.objects.select_for_update().get_or_create(application=application)
        before = _state(policy, _POLICY_FIELDS)
        for name, value in changes.items():
            setattr(policy, name, value)
        policy.full_clean()
        policy.save()
        policies.bump(application.id)
        _audit(
            caller=caller,
            action="guardrails.policy_update",
            target_type="guardrail_policy",
            target_id=application.id,
            team_id=application.team_id,
            before=before,
            after=_state(policy, _POLICY_FIELDS),
        )
    return policy


# ---------------------------------------------------------------------------------------------
# Classification rules


def _require_unique_name(
    model: type[ClassificationRule] | type[DataSource], *, team: Team, name: str, pk: int | None
) -> None:
    queryset = model.objects.filter(team=team, name=name)
    if pk is not None:
        queryset = queryset.exclude(pk=pk)
    if queryset.exists():
        raise ValidationFailed(f"Team {team.name} already has one named '{name}'; choose another name.", param="name")


def classification_rule_create(
    *,
    caller: Caller,
    team: Team,
    name: str,
    kind: str,
    level: int,
    entities: Sequence[str] = (),
    pattern: str = "",
    keywords: Sequence[str] = (),
    is_enabled: bool = True,
) -> ClassificationRule:
    """A rule whose detector the entry point validated: the field its kind uses is set and
    well-formed (entities known, a pattern that compiles and matches no empty text, keywords
    stripped), the other two empty."""
    caller.require_permission(roles.ADD_CLASSIFICATION_RULE, team_id=team.id, action="add classification rules")
    values = {
        "name": name,
        "kind": kind,
        "level": level,
        "is_enabled": is_enabled,
        "entities": list(entities),
        "pattern": pattern,
        "keywords": list(keywords),
    }
    return _create_team_object(
        caller=caller,
        model=ClassificationRule,
        team=team,
        values=values,
        fields=_RULE_FIELDS,
        action="classification.rule_create",
        target_type="classification_rule",
    )


def _create_team_object(
    *,
    caller: Caller,
    model: type[TeamObjectT],
    team: Team,
    values: dict[str, Any],
    fields: Sequence[str],
    action: str,
    target_type: str,
) -> TeamObjectT:
    """Create a rule or source: unique name, every process's team state invalidated, the
    creation audited."""
    with transaction.atomic():
        _require_unique_name(model, team=team, name=values["name"], pk=None)
        instance = model.objects.create(team=team, **values)
        team_states.bump(team.id)
        _audit(
            caller=caller,
            action=action,
            target_type=target_type,
            target_id=instance.id,
            team_id=team.id,
            after=_state(instance, fields),
        )
    return instance


def _update_team_object(
    *,
    caller: Caller,
    instance: ClassificationRule | DataSource,
    changes: dict[str, Any],
    action: str,
    target_type: str,
) -> None:
    """Apply validated changes to a rule or source: unique name, save, every process's team
    state invalidated, the change audited."""
    with transaction.atomic():
        if "name" in changes:
            _require_unique_name(type(instance), team=instance.team, name=changes["name"], pk=instance.pk)
        before = {name: getattr(instance, name) for name in changes}
        for name, value in changes.items():
            setattr(instance, name, value)
        instance.save()
        team_states.bump(instance.team_id)
        after = dict(changes)
        if "text_sha256" in changes and before["text_sha256"] != changes["text_sha256"]:
            before["source_text"], after["source_text"] = secret_state(before["text"]), VALUE_CHANGED
        _audit(
            caller=caller,
            action=action,
            target_type=target_type,
            target_id=instance.id,
            team_id=instance.team_id,
            before=before,
            after=after,
        )


def _delete_team_object(
    *,
    caller: Caller,
    instance: ClassificationRule | DataSource,
    fields: Sequence[str],
    action: str,
    target_type: str,
) -> None:
    """Delete a rule or source: every process's team state invalidated, the deletion audited."""
    team_id, object_id, before = instance.team_id, instance.id, _state(instance, fields)
    with transaction.atomic():
        instance.delete()
        team_states.bump(team_id)
        _audit(
            caller=caller,
            action=action,
            target_type=target_type,
            target_id=object_id,
            team_id=team_id,
            before=before,
        )


def classification_rule_update(
    *,
    caller: Caller,
    rule: ClassificationRule,
    name: str | None = None,
    kind: str | None = None,
    level: int | None = None,
    entities: Sequence[str] | None = None,
    pattern: str | None = None,
    keywords: Sequence[str] | None = None,
    is_enabled: bool | None = None,
) -> ClassificationRule:
    """Change the given fields (None keeps a field's value). A changed detector comes whole and
    validated from the entry point, as for `classification_rule_create`."""
    caller.require_permission(
        roles.CHANGE_CLASSIFICATION_RULE, team_id=rule.team_id, action="change classification rules"
    )
    changes = _given(
        name=name,
        kind=kind,
        level=level,
        entities=None if entities is None else list(entities),
        pattern=pattern,
        keywords=None if keywords is None else list(keywords),
        is_enabled=is_enabled,
    )
    _update_team_object(
        caller=caller,
        instance=rule,
        changes=changes,
        action="classification.rule_update",
        target_type="classification_rule",
    )
    return rule


def classification_rule_delete(*, caller: Caller, rule: ClassificationRule) -> None:
    caller.require_permission(
        roles.DELETE_CLASSIFICATION_RULE, team_id=rule.team_id, action="delete classification rules"
    )
    _delete_team_object(
        caller=caller,
        instance=rule,
        fields=_RULE_FIELDS,
        action="classification.rule_delete",
        target_type="classification_rule",
    )


# ---------------------------------------------------------------------------------------------
# Data sources


def data_source_create(
    *,
    caller: Caller,
    team: Team,
    name: str,
    text: str,
    classification_level: int,
    description: str = "",
    leak_action: str = LeakAction.BLOCK,
    leak_share: float = 0.2,
) -> DataSource:
    """A data source whose values the entry point validated: a text that is not blank, a
    leak_share above 0 and at most 1."""
    caller.require_permission(roles.ADD_DATA_SOURCE, team_id=team.id, action="register data sources")
    values = {
        "name": name,
        "description": description,
        "classification": classification_level,
        "text": text,
        "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "fingerprints": classification.fingerprint(text),
        "leak_action": leak_action,
        "leak_share": leak_share,
    }
    return _create_team_object(
        caller=caller,
        model=DataSource,
        team=team,
        values=values,
        fields=_SOURCE_FIELDS,
        action="data_source.create",
        target_type="data_source",
    )


def _require_cleared_for(caller: Caller, source: DataSource, *, level: int | None = None) -> None:
    needed = max(source.classification, level if level is not None else source.classification)
    if caller.clearance_in(source.team_id) < needed:
        raise PermissionDenied(
            f"Changing data source '{source.name}' needs {level_name(needed)} clearance; yours is "
            f"{level_name(caller.clearance_in(source.team_id))}. Ask a team admin to raise it."
        )


def data_source_update(
    *,
    caller: Caller,
    source: DataSource,
    name: str | None = None,
    description: str | None = None,
    classification_level: int | None = None,
    text: str | None = None,
    leak_action: str | None = None,
    leak_share: float | None = None,
) -> DataSource:
    """Change the given fields (None keeps a field's value), validated by the entry point as for
    `data_source_create`."""
    caller.require_permission(roles.CHANGE_DATA_SOURCE, team_id=source.team_id, action="change data sources")
    _require_cleared_for(caller, source, level=classification_level)
    changes = _given(
        name=name,
        description=description,
        classification=classification_level,
        text=text,
        leak_action=leak_action,
        leak_share=leak_share,
    )
    if text is not None:
        changes["text_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        changes["fingerprints"] = classification.fingerprint(text)
    _update_team_object(
        caller=caller, instance=source, changes=changes, action="data_source.update", target_type="data_source"
    )
    return source


def data_source_delete(*, caller: Caller, source: DataSource) -> None:
    caller.require_permission(roles.DELETE_DATA_SOURCE, team_id=source.team_id, action="delete data sources")
    _require_cleared_for(caller, source)
    _delete_team_object(
        caller=caller, instance=source, fields=_SOURCE_FIELDS, action="data_source.delete", target_type="data_source"
    )
