"""Reads scoped to the caller's teams: another team's object is reported missing (404)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from accounts import roles
from accounts import selectors as account_selectors
from accounts.caller import Caller
from compliance.guardrails.models import ClassificationRule, DataSource, GuardrailPolicy
from compliance.guardrails.services import default_policy
from core.errors import NotFound

if TYPE_CHECKING:
    from accounts.models import Application


def guardrail_policy_get(*, caller: Caller, application_id: int | str) -> tuple[Application, GuardrailPolicy]:
    """The application's stored policy, or an unsaved one holding the defaults."""
    application = account_selectors.application_get(caller=caller, application_id=application_id)
    caller.require_permission(
        roles.VIEW_GUARDRAIL_POLICY, team_id=application.team_id, action="view guardrail policies"
    )
    policy = GuardrailPolicy.objects.filter(application=application).first()
    if policy is None:
        policy = default_policy(application)
    policy.application = application
    return application, policy


def _visible_team_ids(caller: Caller, permission: str) -> list[int]:
    return [team_id for team_id in caller.team_ids if caller.has_permission(permission, team_id=team_id)]


def classification_rule_list(*, caller: Caller, team_id: int | None = None) -> QuerySet[ClassificationRule]:
    queryset = ClassificationRule.objects.filter(
        team_id__in=_visible_team_ids(caller, roles.VIEW_CLASSIFICATION_RULE)
    ).select_related("team")
    if team_id is not None:
        queryset = queryset.filter(team_id=team_id)
    return queryset.order_by("team_id", "name", "id")


def classification_rule_get(*, caller: Caller, rule_id: int | str) -> ClassificationRule:
    rule = (
        ClassificationRule.objects.filter(team_id__in=caller.team_ids, pk=int(rule_id)).select_related("team").first()
    )
    if rule is None:
        raise NotFound(f"No classification rule with id {rule_id} exists in your teams.")
    caller.require_permission(roles.VIEW_CLASSIFICATION_RULE, team_id=rule.team_id, action="view classification rules")
    return rule


def data_source_list(*, caller: Caller, team_id: int | None = None) -> QuerySet[DataSource]:
    queryset = (
        DataSource.objects.filter(team_id__in=_visible_team_ids(caller, roles.VIEW_DATA_SOURCE))
        .select_related("team")
        .defer("fingerprints")
    )
    if team_id is not None:
        queryset = queryset.filter(team_id=team_id)
    return queryset.order_by("team_id", "name", "id")


def data_source_get(*, caller: Caller, source_id: int | str) -> DataSource:
    source = DataSource.objects.filter(team_id__in=caller.team_ids, pk=int(source_id)).select_related("team").first()
    if source is None:
        raise NotFound(f"No data source with id {source_id} exists in your teams.")
    caller.require_permission(roles.VIEW_DATA_SOURCE, team_id=source.team_id, action="view data sources")
    return source


def can_read_source_text(*, caller: Caller, source: DataSource) -> bool:
    return caller.clearance_in(source.team_id) >= source.classification
