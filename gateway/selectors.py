"""Reads of the model catalog and routing, scoped to what the caller may see.

A caller sees the shared catalog and the entries of the teams where it may view the
catalog; another team's entry is reported as missing (NotFound), never as forbidden.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet

from accounts import roles
from accounts import selectors as account_selectors
from accounts.caller import Caller
from core.errors import NotFound, PermissionDenied, ValidationFailed
from costs.services import call_cost, price_for
from gateway import complexity
from gateway.models import LanguageModel, Provider, RoutingPolicy, RoutingPolicyKind
from gateway.routing import PolicyConfig, decide
from observability.selectors import call_latest_uncached_successes

if TYPE_CHECKING:
    from accounts.models import Application
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


def model_price(*, model: LanguageModel, at: datetime) -> ModelPrice | None:
    """The catalog model's price in force at `at` (prices live in the costs app, one history per model)."""
    return price_for(team_id=model.team_id, model=model.name, at=at, model_id=model.id)


def catalog_models() -> QuerySet[LanguageModel, tuple[int, int | None, str]]:
    """Every catalog model as (id, team id or None for the shared catalog, name), unscoped:
    for trusted readers such as the costs app's price table."""
    return LanguageModel.objects.values_list("id", "team_id", "name")


def catalog_model_find(*, team_id: int | None, name: str) -> LanguageModel | None:
    """The model a team's catalog names so (team_id None: the shared catalog), unscoped."""
    if team_id is None:
        return LanguageModel.objects.filter(team__isnull=True, name=name).first()
    return LanguageModel.objects.filter(team_id=team_id, name=name).first()


def routing_get(*, caller: Caller, application_id: int | str) -> tuple[Application, RoutingPolicy]:
    """The application and its routing policy (an unsaved default when none is set)."""
    application = account_selectors.application_get(caller=caller, application_id=application_id)
    routing = RoutingPolicy.objects.filter(application=application).first()
    return application, routing or RoutingPolicy(application=application)


# Routing simulation -------------------------------------------------------------------

MAX_SIMULATED_CALLS = 1000


@dataclass(frozen=True)
class SimulatedCall:
    call_id: str
    created_at: datetime
    request_model: str
    actual_model: str
    projected_model: str
    tier: str
    score: float | None
    reason: str
    input_tokens: int
    output_tokens: int
    actual_cost: Decimal
    projected_cost: Decimal

    @property
    def is_changed(self) -> bool:
        return self.projected_model != self.actual_model


@dataclass(frozen=True)
class RoutingSimulation:
    calls: list[SimulatedCall]
    actual_cost: Decimal
    projected_cost: Decimal
    changed_calls: int

    @property
    def saved(self) -> Decimal:
        return self.actual_cost - self.projected_cost

    @property
    def saved_percent(self) -> float | None:
        return float(self.saved / self.actual_cost * 100) if self.actual_cost else None


def _fixed_score(value: float) -> Callable[[Sequence[Any]], float]:
    return lambda _messages: value


def routing_simulate(
    *,
    caller: Caller,
    application_id: int | str,
    config: PolicyConfig,
    limit: int = 100,
    score: Callable[[Sequence[str]], Sequence[float]] | None = None,
) -> RoutingSimulation:
    """Replay the application's last `limit` successful upstream calls (cache hits excluded)
    through `config` (not saved): each call's actual token counts priced at the projected
    model's price at the call's time (costs.services.call_cost), against what it cost.

    `score(texts)`: complexity scores of many queries at once (default: the shipped scorer).
    """
    application = account_selectors.application_get(caller=caller, application_id=application_id)
    caller.require_permission(roles.VIEW_SPEND, team_id=application.team_id, action="simulate routing costs")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SIMULATED_CALLS:
        raise ValidationFailed(f"limit must be a whole number from 1 to {MAX_SIMULATED_CALLS}.", param="limit")
    calls = call_latest_uncached_successes(team_id=application.team_id, application_id=application.id, limit=limit)
    scores: list[float | None] = [None] * len(calls)
    if config.policy == RoutingPolicyKind.COMPLEXITY and calls:
        texts = [complexity.query_text(call.request_messages or []) for call in calls]
        scorer = score or (lambda many: complexity.scorer().scores(list(many)).tolist())
        scores = [float(value) if text.strip() else 0.0 for text, value in zip(texts, scorer(texts), strict=True)]
    rows: list[SimulatedCall] = []
    for call, call_score in zip(calls, scores, strict=True):
        decision = decide(
            config,
            requested_model=call.request_model,
            messages=call.request_messages or [],
            at=call.created_at,
            score=_fixed_score(call_score or 0.0),
            team_id=application.team_id,
        )
        projected_cost = call_cost(
            team_id=application.team_id,
            model=decision.model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cached_tokens=call.cached_tokens,
            at=call.created_at,
        )
        rows.append(
            SimulatedCall(
                call_id=str(call.id),
                created_at=call.created_at,
                request_model=call.request_model,
                actual_model=call.response_model or call.request_model,
                projected_model=decision.model,
                tier=decision.tier,
                score=decision.score,
                reason=decision.reason,
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                actual_cost=call.cost_usd,
                projected_cost=projected_cost,
            )
        )
    return RoutingSimulation(
        calls=rows,
        actual_cost=sum((row.actual_cost for row in rows), Decimal(0)),
        projected_cost=sum((row.projected_cost for row in rows), Decimal(0)),
        changed_calls=sum(row.is_changed for row in rows),
    )
