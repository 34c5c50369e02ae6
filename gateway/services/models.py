"""Writes to the catalog's models. Every write calls `catalog_changed()` so that each
process's catalog cache reloads."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts.caller import Caller
from core.errors import Conflict, ValidationFailed
from core.ids import parse_whole_number
from costs import services as costs_services
from gateway.catalog import catalog_changed
from gateway.models import LanguageModel, ModelTier, Provider
from gateway.services.audit import audit_catalog
from gateway.services.fields import (
    model_names_visible_to,
    team_q,
    validate_fallbacks,
    validate_name,
)
from gateway.services.permissions import actor, require_catalog_manager
from gateway.services.prices import Price, model_price_set

if TYPE_CHECKING:
    from accounts.models import Team

logger = logging.getLogger(__name__)

MAX_CONTEXT_WINDOW = 10_000_000


def _resolve_provider(value: Provider | int | str, *, team_id: int | None) -> Provider:
    """A provider the model's team may use: its own or a shared one (shared models: shared only)."""
    scope = Q(team__isnull=True) if team_id is None else Q(team__isnull=True) | Q(team_id=team_id)
    candidates = Provider.objects.filter(scope)
    where = "the shared catalog" if team_id is None else "this team or the shared catalog"
    if isinstance(value, Provider):
        if not candidates.filter(pk=value.pk).exists():
            raise ValidationFailed(f"Provider '{value.name}' is not in {where}.", param="provider")
        return value
    if value == "":
        raise ValidationFailed("provider is required: the id or name of a provider.", param="provider")
    provider_id = value if isinstance(value, int) else parse_whole_number(value)
    if provider_id is not None:
        found = candidates.filter(pk=provider_id).first()
    else:
        # The team's own provider wins over a shared one of the same name.
        matches = sorted(candidates.filter(name=value), key=lambda provider: provider.team_id is None)
        found = matches[0] if matches else None
    if found is None:
        raise ValidationFailed(
            f"No provider '{value}' in {where}; add it first or fix the id or name.", param="provider"
        )
    return found


def _validate_model_fields(values: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name == "provider_model":
            if not value.strip() or len(value.strip()) > 200:
                raise ValidationFailed(
                    "provider_model is required: the model id the provider expects (at most 200 characters).",
                    param=name,
                )
            cleaned[name] = value.strip()
        elif name == "context_window":
            if not 1 <= value <= MAX_CONTEXT_WINDOW:
                raise ValidationFailed(
                    f"context_window must be a whole number of tokens from 1 to {MAX_CONTEXT_WINDOW}.", param=name
                )
            cleaned[name] = value
        elif name == "tier":
            if value not in ModelTier.values:
                raise ValidationFailed(f"tier must be one of: {', '.join(ModelTier.values)}.", param=name)
            cleaned[name] = value
        elif name == "is_enabled":
            cleaned[name] = value
        else:  # pragma: no cover - a programming error, not input
            raise TypeError(f"unknown model setting {name}")
    return cleaned


def model_create(
    *,
    caller: Caller | None,
    team: Team | None,
    name: str,
    provider: Provider | int | str,
    provider_model: str,
    context_window: int = 8192,
    tier: str = ModelTier.MEDIUM,
    fallbacks: Sequence[str] = (),
    is_enabled: bool = True,
    price: Price | None = None,
) -> LanguageModel:
    team_id = team.id if team is not None else None
    require_catalog_manager(caller, team_id=team_id, action="add models")
    model_name = validate_name(name, max_length=200)
    values = _validate_model_fields(
        {"provider_model": provider_model, "context_window": context_window, "tier": tier, "is_enabled": is_enabled}
    )
    if "provider_model" not in values:
        raise ValidationFailed("provider_model is required: the model id the provider expects.", param="provider_model")
    resolved_provider = _resolve_provider(provider, team_id=team_id)
    scope = "the shared catalog" if team_id is None else "this team or the shared catalog"
    chain = validate_fallbacks(
        list(fallbacks), visible=model_names_visible_to(team_id), own_name=model_name, scope=scope
    )
    try:
        with transaction.atomic():
            if LanguageModel.objects.filter(team_q(team_id), name=model_name).exists():
                where = "the shared catalog" if team_id is None else "this team"
                raise Conflict(f"A model named '{model_name}' already exists in {where}.", param="name")
            model = LanguageModel.objects.create(
                team=team, name=model_name, provider=resolved_provider, fallbacks=chain, **values
            )
            audit_catalog(caller, "model.create", model, before=None, after=_model_audit_state(model))
            # A new name may shadow a shared one for the team, and a shared model takes over the
            # list prices of its name: either way every process's price table reloads.
            if team is None:
                costs_services.list_prices_adopt(model=model)
            else:
                costs_services.prices_changed()
            if price is not None:
                model_price_set(caller=caller, model=model, price=price)
            catalog_changed()
    except IntegrityError:
        raise Conflict(f"A model named '{model_name}' already exists.", param="name") from None
    logger.info("model created", extra={"model_id": model.id, "team_id": team_id, "actor": actor(caller)})
    return model


def model_update(
    *,
    caller: Caller | None,
    model: LanguageModel,
    provider: Provider | int | str | None = None,
    provider_model: str | None = None,
    context_window: int | None = None,
    tier: str | None = None,
    fallbacks: Sequence[str] | None = None,
    is_enabled: bool | None = None,
    price: Price | None = None,
) -> LanguageModel:
    """Change the given settings (None: unchanged). The name is fixed: calls are recorded by name."""
    require_catalog_manager(caller, team_id=model.team_id, action="change models")
    values = _validate_model_fields(
        {"provider_model": provider_model, "context_window": context_window, "tier": tier, "is_enabled": is_enabled}
    )
    if provider is not None:
        resolved = _resolve_provider(provider, team_id=model.team_id)
        values["provider_id"] = resolved.id
    if fallbacks is not None:
        scope = "the shared catalog" if model.team_id is None else "this team or the shared catalog"
        values["fallbacks"] = validate_fallbacks(
            list(fallbacks), visible=model_names_visible_to(model.team_id), own_name=model.name, scope=scope
        )
    changed = [name for name, value in values.items() if getattr(model, name) != value]
    with transaction.atomic():
        if changed:
            before = _model_audit_state(model)
            for name in changed:
                setattr(model, name, values[name])
            model.save(update_fields=[*changed, "updated_at"])
            audit_catalog(caller, "model.update", model, before=before, after=_model_audit_state(model))
        if price is not None:
            model_price_set(caller=caller, model=model, price=price)
        if changed or price is not None:
            catalog_changed()
    if changed:
        logger.info("model changed", extra={"model_id": model.id, "changes": sorted(changed), "actor": actor(caller)})
    return model


def model_disable(*, caller: Caller | None, model: LanguageModel) -> LanguageModel:
    """Disable, never delete: call records refer to models by name."""
    return model_update(caller=caller, model=model, is_enabled=False)


def _model_audit_state(model: LanguageModel) -> dict[str, Any]:
    return {"name": model.name, **model_state(model)}


def model_state(model: LanguageModel) -> dict[str, Any]:
    state = {name: getattr(model, name) for name in ("provider_id", "provider_model", "context_window", "tier")}
    return {**state, "fallbacks": list(model.fallbacks), "is_enabled": model.is_enabled}
