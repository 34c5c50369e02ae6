"""Configuration as code (seed_catalog, gateway_sync): apply catalog entries given as specs,
all or nothing, and say what changed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import transaction

from accounts.selectors import application_of_team_and_name
from core.errors import ApplicationError, ValidationFailed
from gateway.models import LanguageModel, Provider, RoutingPolicy
from gateway.services.models import model_create, model_state, model_update
from gateway.services.prices import model_price_set
from gateway.services.providers import PROVIDER_LIMITS, provider_create, provider_update, stored_key
from gateway.services.routing import routing_set
from gateway.services.specs import ModelSpec, ProviderSpec, RoutingSpec

if TYPE_CHECKING:
    from accounts.models import Team


class CatalogEntryError(Exception):
    """An entry of a catalog file is invalid: `section` ("providers", "models", "routing"),
    its `index` there, and the domain error (whose `param` names the field)."""

    def __init__(self, section: str, index: int, error: ApplicationError) -> None:
        super().__init__(error.message)
        self.section = section
        self.index = index
        self.error = error


class _DryRun(Exception):
    pass


Spec = TypeVar("Spec")
Outcome = TypeVar("Outcome")


def _provider_state(provider: Provider) -> dict[str, Any]:
    state = {name: getattr(provider, name) for name in ("base_url", *PROVIDER_LIMITS, "is_enabled")}
    state["api_key"] = stored_key(provider)
    return state


def _describe(kind: str, name: str, before: dict[str, Any] | None, after: dict[str, Any]) -> tuple[str, bool]:
    if before is None:
        return f"{kind} {name}: created", True
    changed = sorted(key for key in after if before.get(key) != after[key])
    if not changed:
        return f"{kind} {name}: unchanged", False
    return f"{kind} {name}: updated ({', '.join(changed)})", True


def catalog_apply(
    *,
    team: Team | None,
    providers: Sequence[ProviderSpec] = (),
    models: Sequence[ModelSpec] = (),
    routing: Sequence[RoutingSpec] = (),
    is_dry_run: bool = False,
) -> tuple[list[str], int]:
    """Create or update the given entries of `team`'s catalog (None: shared), all or nothing.

    Trusted provisioning (management commands): no permission checks. Entries not named
    are left alone. Returns one line per entry and the number of changes.
    """
    outcomes: list[tuple[str, bool]] = []
    try:
        with transaction.atomic():
            outcomes += _apply_each("providers", providers, partial(_apply_provider, team))
            outcomes += _apply_models(team, models)
            outcomes += _apply_each("routing", routing, partial(_apply_routing, team))
            if is_dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return [line for line, _ in outcomes], sum(is_change for _, is_change in outcomes)


def _apply_each(section: str, specs: Sequence[Spec], apply: Callable[[Spec], Outcome]) -> list[Outcome]:
    """Apply a section's entries in order; a refusal names the section and the entry's index."""
    outcomes = []
    for index, spec in enumerate(specs):
        try:
            outcomes.append(apply(spec))
        except ApplicationError as error:
            raise CatalogEntryError(section, index, error) from None
    return outcomes


def _apply_models(team: Team | None, models: Sequence[ModelSpec]) -> list[tuple[str, bool]]:
    # Two passes so that models may name each other as fallbacks in any order.
    existing = {
        model.name: model for model in LanguageModel.objects.filter(team=team, name__in=[m.name for m in models])
    }
    before = {name: model_state(model) for name, model in existing.items()}

    def create(model_spec: ModelSpec) -> None:
        if model_spec.name not in existing:
            existing[model_spec.name] = model_create(
                caller=None,
                team=team,
                name=model_spec.name,
                provider=model_spec.provider,
                provider_model=model_spec.provider_model,
                context_window=model_spec.context_window,
                tier=model_spec.tier,
                is_enabled=model_spec.is_enabled,
            )

    def update(model_spec: ModelSpec) -> tuple[str, bool]:
        model = existing[model_spec.name]
        model_update(
            caller=None,
            model=model,
            provider=model_spec.provider,
            provider_model=model_spec.provider_model,
            context_window=model_spec.context_window,
            tier=model_spec.tier,
            fallbacks=list(model_spec.fallbacks),
            is_enabled=model_spec.is_enabled,
        )
        price_changed = model_spec.price is not None and model_price_set(
            caller=None, model=model, price=model_spec.price
        )
        old_state = before.get(model_spec.name)
        return _describe(
            "model",
            model_spec.name,
            {**old_state, "price": int(price_changed)} if old_state is not None else None,
            {**model_state(model), "price": 0},
        )

    _apply_each("models", models, create)
    return _apply_each("models", models, update)


def _apply_provider(team: Team | None, spec: ProviderSpec) -> tuple[str, bool]:
    settings: dict[str, Any] = {
        "base_url": spec.base_url,
        "connect_timeout_seconds": spec.connect_timeout_seconds,
        "read_timeout_seconds": spec.read_timeout_seconds,
        "max_retries": spec.max_retries,
        "retry_budget_seconds": spec.retry_budget_seconds,
        "is_enabled": spec.is_enabled,
    }
    provider = Provider.objects.filter(team=team, name=spec.name).first()
    if provider is None:
        provider_create(caller=None, team=team, name=spec.name, api_key=spec.api_key or "", **settings)
        return f"provider {spec.name}: created", True
    before = _provider_state(provider)
    provider_update(caller=None, provider=provider, api_key=spec.api_key, **settings)
    return _describe("provider", spec.name, before, _provider_state(provider))


def _apply_routing(team: Team | None, spec: RoutingSpec) -> tuple[str, bool]:
    team_name = spec.team or (team.name if team is not None else None)
    if not team_name:
        raise ValidationFailed("team is required for routing in the shared catalog (or pass --team).", param="team")
    application = application_of_team_and_name(team_name=team_name, name=spec.application)
    if application is None:
        raise ValidationFailed(f"No application '{spec.application}' in team '{team_name}'.", param="application")
    label = f"routing {team_name}/{spec.application}"
    current = RoutingPolicy.objects.filter(application=application).first()
    if current is not None and spec.only_if_unset:
        return f"{label}: unchanged (already set)", False
    before = (current.policy, current.model, list(current.fallbacks)) if current is not None else None
    routing = routing_set(
        caller=None, application=application, policy=spec.policy, model=spec.model, fallbacks=list(spec.fallbacks)
    )
    after = (routing.policy, routing.model, list(routing.fallbacks))
    if before is None:
        return f"{label}: created", True
    return (f"{label}: unchanged", False) if before == after else (f"{label}: updated", True)
