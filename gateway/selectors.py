"""Reads of the model catalog and routing, scoped to what the caller may see.

A caller sees the shared catalog and the entries of the teams where it may view the
catalog; another team's entry is reported as missing (NotFound), never as forbidden.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet

from accounts import roles
from accounts import selectors as account_selectors
from accounts.caller import Caller
from accounts.models import Application
from controlplane.errors import NotFound, PermissionDenied, ValidationFailed
from gateway.models import LanguageModel, Provider, RoutingPolicy

if TYPE_CHECKING:
    from costs.models import ModelPrice


def catalog_team_ids(caller: Caller) -> list[int]:
    """The caller's teams whose catalog it may view."""
    return [team_id for team_id in caller.team_ids if caller.has_permission(roles.VIEW_CATALOG, team_id=team_id)]


def _is_operator(caller: Caller) -> bool:
    return caller.user is not None and caller.user.is_superuser


def _scope(caller: Caller, team: str | int | None) -> Q:
    team_ids = catalog_team_ids(caller)
    if not team_ids and not _is_operator(caller):
        raise PermissionDenied(
            f"Your role does not allow you to view the model catalog; ask a team admin for a role "
            f"that has the '{roles.VIEW_CATALOG}' permission."
        )
    if team in (None, ""):
        return Q(team__isnull=True) | Q(team_id__in=team_ids)
    if team == "shared":
        return Q(team__isnull=True)
    try:
        team_id = int(team)
    except (TypeError, ValueError):
        raise ValidationFailed("team must be a team id or 'shared'.", param="team") from None
    return Q(team_id=team_id) if team_id in team_ids else Q(pk__in=[])


def provider_list(*, caller: Caller, team: str | int | None = None) -> QuerySet[Provider]:
    """Providers the caller sees; `team`: a team id (its own entries) or 'shared'."""
    return Provider.objects.filter(_scope(caller, team)).select_related("team").order_by("name", "team_id", "id")


def provider_get(*, caller: Caller, provider_id: int | str) -> Provider:
    try:
        return provider_list(caller=caller).get(pk=int(provider_id))
    except (Provider.DoesNotExist, ValueError, TypeError, OverflowError):
        raise NotFound(f"No provider with id {provider_id} exists in your teams or the shared catalog.") from None


def model_list(
    *,
    caller: Caller,
    team: str | int | None = None,
    provider_id: int | None = None,
    is_enabled: bool | None = None,
) -> QuerySet[LanguageModel]:
    queryset = LanguageModel.objects.filter(_scope(caller, team)).select_related("team", "provider")
    if provider_id is not None:
        queryset = queryset.filter(provider_id=provider_id)
    if is_enabled is not None:
        queryset = queryset.filter(is_enabled=is_enabled)
    return queryset.order_by("name", "team_id", "id")


def model_get(*, caller: Caller, model_id: int | str) -> LanguageModel:
    try:
        return model_list(caller=caller).get(pk=int(model_id))
    except (LanguageModel.DoesNotExist, ValueError, TypeError, OverflowError):
        raise NotFound(f"No model with id {model_id} exists in your teams or the shared catalog.") from None


def model_price(*, name: str, at: datetime) -> ModelPrice | None:
    """The price in force for a model name (prices live in the costs app, keyed by name)."""
    from costs import services as costs_services

    return costs_services.price_for(model=name, at=at)


def routing_get(*, caller: Caller, application_id: int | str) -> tuple[Application, RoutingPolicy]:
    """The application and its routing policy (an unsaved default when none is set)."""
    application = account_selectors.application_get(caller=caller, application_id=application_id)
    routing = RoutingPolicy.objects.filter(application=application).first()
    return application, routing or RoutingPolicy(application=application)
