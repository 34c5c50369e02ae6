"""Writes to an application's routing: which model its calls get (see RoutingPolicy)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from accounts import roles
from accounts.caller import Caller
from core.errors import ValidationFailed
from gateway.catalog import catalog_changed
from gateway.models import ModelTier, RoutingPolicy, RoutingPolicyKind
from gateway.routing import DEFAULT_THRESHOLD, output_price
from gateway.services.audit import audit_routing
from gateway.services.fields import model_names_visible_to, validate_fallbacks
from gateway.services.permissions import actor

if TYPE_CHECKING:
    from accounts.models import Application

logger = logging.getLogger(__name__)


def _validate_threshold(value: float) -> float:
    if not math.isfinite(value):
        raise ValidationFailed("threshold must be a number from 0 to 1.", param="threshold")
    if not 0 <= value <= 1:
        raise ValidationFailed(
            f"threshold must be from 0 to 1 (a complexity score); {float(value):g} is out of range.", param="threshold"
        )
    return float(value)


def _validate_max_price(value: Decimal | float | None, *, policy: str) -> Decimal | None:
    if value is None:
        if policy == RoutingPolicyKind.COST_CAP:
            raise ValidationFailed(
                "max_price is required for the cost_cap policy: the highest output price allowed, "
                "in USD per million output tokens.",
                param="max_price",
            )
        return None
    price = Decimal(str(value))
    if not price.is_finite() or price < 0 or price >= Decimal("1000000"):
        raise ValidationFailed(
            "max_price must be from 0 to 999999 USD per million output tokens (not negative).", param="max_price"
        )
    return price.quantize(Decimal("0.000001"))


def _validate_tiers(value: Mapping[str, str | None] | None, *, policy: str, visible: set[str]) -> dict[str, str]:
    if value is None:
        value = {}
    unknown_keys = sorted(str(key) for key in value if key not in ModelTier.values)
    if unknown_keys:
        raise ValidationFailed(
            f"tiers: unknown tier {', '.join(unknown_keys)}; use small, medium and large.", param="tiers"
        )
    tiers: dict[str, str] = {}
    for tier in ModelTier.values:
        name = value.get(tier)
        param = f"tiers.{tier}"
        if name is None or name == "":
            continue
        name = name.strip()
        if name not in visible:
            raise ValidationFailed(
                f"{param}: no model named '{name}' in this team or the shared catalog; "
                "add the model first or fix the name.",
                param=param,
            )
        tiers[tier] = name
    if policy == RoutingPolicyKind.COMPLEXITY:
        for tier in (ModelTier.SMALL, ModelTier.LARGE):
            if tier.value not in tiers:
                raise ValidationFailed(
                    f"tiers.{tier.value} is required for the complexity policy: name the model that answers "
                    f"{'simple' if tier == ModelTier.SMALL else 'hard'} queries.",
                    param=f"tiers.{tier.value}",
                )
    if policy == RoutingPolicyKind.COST_CAP and not tiers:
        raise ValidationFailed(
            "tiers: the cost_cap policy needs at least one tier model to send calls to when the requested "
            "model is above max_price.",
            param="tiers",
        )
    return tiers


def _check_cap_reachable(tiers: dict[str, str], max_price: Decimal, *, team_id: int) -> None:
    now = timezone.now()
    prices = {name: output_price(name, team_id=team_id, at=now) for name in tiers.values()}
    if not any(price is not None and price <= max_price for price in prices.values()):
        listed = ", ".join(
            f"{name} {'$' + format(price.normalize(), 'f') if price is not None else 'no price'}"
            for name, price in prices.items()
        )
        raise ValidationFailed(
            f"max_price: no tier model has an output price within ${format(max_price.normalize(), 'f')} "
            f"per million tokens ({listed}); raise max_price or add a cheaper tier.",
            param="max_price",
        )


@dataclass(frozen=True)
class CheckedRouting:
    policy: str
    model: str
    fallbacks: list[str]
    tiers: dict[str, str]
    threshold: float
    max_price: Decimal | None


def routing_check(
    *,
    application: Application,
    policy: str = RoutingPolicyKind.FIXED,
    model: str = "",
    fallbacks: Sequence[str] = (),
    tiers: Mapping[str, str | None] | None = None,
    threshold: float | None = None,
    max_price: Decimal | float | None = None,
) -> CheckedRouting:
    """Validate a routing policy for the application without saving it (ValidationFailed names
    the field). routing_set saves what it returns; the simulation page replays it."""
    if policy not in RoutingPolicyKind.values:
        raise ValidationFailed(f"policy must be one of: {', '.join(RoutingPolicyKind.values)}.", param="policy")
    visible = model_names_visible_to(application.team_id)
    model_name = model.strip()
    if model_name and model_name not in visible:
        raise ValidationFailed(
            f"model: no model named '{model_name}' in this team or the shared catalog; "
            "add the model first or fix the name.",
            param="model",
        )
    tier_names = _validate_tiers(tiers, policy=policy, visible=visible)
    threshold_value = DEFAULT_THRESHOLD if threshold is None else _validate_threshold(threshold)
    cap = _validate_max_price(max_price, policy=policy)
    if policy == RoutingPolicyKind.COST_CAP and cap is not None:
        _check_cap_reachable(tier_names, cap, team_id=application.team_id)
    chain = validate_fallbacks(
        list(fallbacks) if fallbacks is not None else [],
        visible=visible,
        own_name=model_name,
        scope="this team or the shared catalog",
    )
    return CheckedRouting(
        policy=policy, model=model_name, fallbacks=chain, tiers=tier_names, threshold=threshold_value, max_price=cap
    )


def routing_set(
    *,
    caller: Caller | None,
    application: Application,
    policy: str = RoutingPolicyKind.FIXED,
    model: str = "",
    fallbacks: Sequence[str] = (),
    tiers: Mapping[str, str | None] | None = None,
    threshold: float | None = None,
    max_price: Decimal | float | None = None,
) -> RoutingPolicy:
    """Replace how the application's calls pick a model (see RoutingPolicy for the policies):
    `fixed` uses `model` (when set, overriding the requested one); `complexity` picks a tier of
    `tiers` by the query's complexity score against `threshold`; `cost_cap` never routes above
    `max_price` (USD per million output tokens). Then the fallback chain."""
    if caller is not None:
        caller.require_permission(
            roles.CHANGE_APPLICATION,
            team_id=application.team_id,
            obj=application,
            action="change this application's routing",
        )
    checked = routing_check(
        application=application,
        policy=policy,
        model=model,
        fallbacks=fallbacks,
        tiers=tiers,
        threshold=threshold,
        max_price=max_price,
    )
    policy, model_name, chain = checked.policy, checked.model, checked.fallbacks
    tier_names, threshold_value, cap = checked.tiers, checked.threshold, checked.max_price
    wanted = (policy, model_name, chain, tier_names, threshold_value, cap)
    with transaction.atomic():
        routing, created = RoutingPolicy.objects.select_for_update().get_or_create(application=application)
        current = (
            routing.policy,
            routing.model,
            routing.fallbacks,
            routing.tiers,
            routing.threshold,
            routing.max_price,
        )
        changed = created or current != wanted
        if changed:
            before = None if created else _routing_audit_state(routing)
            (
                routing.policy,
                routing.model,
                routing.fallbacks,
                routing.tiers,
                routing.threshold,
                routing.max_price,
            ) = wanted
            routing.save()
            audit_routing(caller, application, before=before, after=_routing_audit_state(routing))
            catalog_changed()
    if changed:
        logger.info(
            "routing changed", extra={"application_id": application.id, "policy": policy, "actor": actor(caller)}
        )
    return routing


def _routing_audit_state(routing: RoutingPolicy) -> dict[str, Any]:
    return {
        "policy": routing.policy,
        "model": routing.model,
        "fallbacks": list(routing.fallbacks),
        "tiers": dict(routing.tiers),
        "threshold": routing.threshold,
        "max_price": routing.max_price,
    }
