"""Model routing: which model an application's call goes to first, and why.

`route()` is what the gateway calls on every request (synchronous, no database query when
the policy is cached; the complexity scorer's embedding, about 7 ms, runs only for
`complexity` policies). `decide()` applies a policy to one request and is shared with the
simulation page, which replays recorded calls through a policy that is not saved.

Policies (see gateway.models.RoutingPolicy): `fixed`, `complexity` (score > threshold ->
large tier; with a medium tier, threshold / 2 < score <= threshold -> medium) and `cost_cap`
(never a model whose output price per million tokens is above `max_price`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from core.generation_cache import GenerationCache
from costs.services import price_for
from gateway import complexity
from gateway.catalog import model_for
from gateway.models import RoutingPolicy
from gateway.types import ModelTier, RoutingPolicyKind

logger = logging.getLogger(__name__)

# The same namespace and subject as gateway.catalog: `catalog_changed()`, which every routing
# write calls, invalidates these entries in every process too.
_cache = GenerationCache("gateway-catalog")
_SUBJECT = "all"
TIER_ORDER = (ModelTier.SMALL.value, ModelTier.MEDIUM.value, ModelTier.LARGE.value)
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class RouteDecision:
    model: str  # the model to call first
    fallbacks: tuple[str, ...]
    reason: str
    tier: str  # "" when no tier was chosen (fixed, no policy)
    score: float | None  # the complexity score, for complexity policies
    baseline_model: str  # what the request would have used without routing, to price the savings


@dataclass(frozen=True)
class PolicyConfig:
    """A routing policy as the router applies it (a saved RoutingPolicy or a simulated one)."""

    policy: str
    model: str = ""
    tiers: tuple[tuple[str, str], ...] = ()  # (tier, model name) in TIER_ORDER, set tiers only
    threshold: float = DEFAULT_THRESHOLD
    max_price: Decimal | None = None
    fallbacks: tuple[str, ...] = ()

    def tier_model(self, tier: str) -> str:
        return dict(self.tiers).get(tier, "")

    @classmethod
    def from_values(
        cls,
        *,
        policy: str,
        model: str = "",
        tiers: dict[str, Any] | None = None,
        threshold: float | None = None,
        max_price: Decimal | None = None,
        fallbacks: Sequence[str] = (),
    ) -> PolicyConfig:
        given = tiers or {}
        return cls(
            policy=policy,
            model=model or "",
            tiers=tuple((tier, str(given[tier])) for tier in TIER_ORDER if given.get(tier)),
            threshold=DEFAULT_THRESHOLD if threshold is None else float(threshold),
            max_price=max_price,
            fallbacks=tuple(fallbacks or ()),
        )

    @classmethod
    def from_model(cls, routing: RoutingPolicy) -> PolicyConfig:
        return cls.from_values(
            policy=routing.policy,
            model=routing.model,
            tiers=routing.tiers if isinstance(routing.tiers, dict) else {},
            threshold=routing.threshold,
            max_price=routing.max_price,
            fallbacks=routing.fallbacks or (),
        )


def _load_policy(application_id: int) -> PolicyConfig | None:
    routing = RoutingPolicy.objects.filter(application_id=application_id).first()
    return PolicyConfig.from_model(routing) if routing is not None else None


def policy_for(*, application_id: int) -> PolicyConfig | None:
    """The application's saved policy, cached per process until the catalog changes."""
    return _cache.get_or_load(
        subject=_SUBJECT, selector=("routing-policy", application_id), load=lambda: _load_policy(application_id)
    )


def output_price(model: str, *, team_id: int | None, at: datetime) -> Decimal | None:
    """USD per million output tokens of the model `team_id` calls `model` at `at` (None: no price known)."""
    price = price_for(team_id=team_id, model=model, at=at)
    return price.output_per_million if price is not None else None


def _usd(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


def _chain(first: str, fallbacks: Sequence[str]) -> tuple[str, ...]:
    return tuple(name for name in fallbacks if name and name != first)


def _score(messages: Sequence[Any]) -> float:
    return complexity.score(complexity.query_text(messages))


def decide(
    config: PolicyConfig | None,
    *,
    requested_model: str,
    messages: Sequence[Any],
    at: datetime | None = None,
    is_available: Callable[[str], bool] | None = None,
    score: Callable[[Sequence[Any]], float] = _score,
    team_id: int | None = None,
) -> RouteDecision:
    """Apply `config` to one request (`team_id`: whose catalog prices the models; None: shared).
    `is_available(name)`: whether the team can call the model
    now (route() asks the catalog; the simulation assumes every configured model is)."""
    if config is None:
        return RouteDecision(requested_model, (), "requested model (no routing policy)", "", None, requested_model)
    if config.policy == RoutingPolicyKind.COMPLEXITY and config.tiers:
        return _by_complexity(config, messages=messages, is_available=is_available, score=score)
    if config.policy == RoutingPolicyKind.COST_CAP and config.max_price is not None:
        return _by_price(config, requested_model=requested_model, at=at or timezone.now(), team_id=team_id)
    reason = f"policy fixed: {config.model}" if config.model else "policy fixed: requested model"
    model = config.model or requested_model
    return RouteDecision(model, _chain(model, config.fallbacks), reason, "", None, requested_model or model)


def _by_complexity(
    config: PolicyConfig,
    *,
    messages: Sequence[Any],
    is_available: Callable[[str], bool] | None,
    score: Callable[[Sequence[Any]], float],
) -> RouteDecision:
    value = score(messages)
    threshold = config.threshold
    large = config.tier_model(ModelTier.LARGE) or config.tiers[-1][1]
    if value > threshold:
        tier, comparison = ModelTier.LARGE.value, f"{value:.2f} > {threshold:g}"
    elif config.tier_model(ModelTier.MEDIUM) and value > threshold / 2:
        tier, comparison = ModelTier.MEDIUM.value, f"{threshold / 2:g} < {value:.2f} <= {threshold:g}"
    else:
        tier, comparison = ModelTier.SMALL.value, f"{value:.2f} <= {threshold:g}"
    model = config.tier_model(tier) or large
    reason = f"complexity {comparison}: {tier} tier ({model})"
    if is_available is not None and not is_available(model):
        # A tier's model was disabled since the policy was saved: go up to one that is served.
        for candidate_tier in reversed(TIER_ORDER):
            candidate = config.tier_model(candidate_tier)
            if candidate and candidate != model and is_available(candidate):
                reason += f"; {model} unavailable, {candidate_tier} tier ({candidate})"
                tier, model = candidate_tier, candidate
                break
    return RouteDecision(model, _chain(model, config.fallbacks), reason, tier, round(value, 4), large)


def _by_price(config: PolicyConfig, *, requested_model: str, at: datetime, team_id: int | None) -> RouteDecision:
    cap = config.max_price
    if cap is None:  # pragma: no cover - decide() checked it
        raise ValueError("cost_cap needs max_price")
    preferred = config.model or requested_model
    preferred_price = output_price(preferred, team_id=team_id, at=at) if preferred else None
    if preferred_price is not None and preferred_price <= cap:
        reason = f"cost cap ${_usd(cap)}/M output: {preferred} (${_usd(preferred_price)}) within the cap"
        return RouteDecision(preferred, _chain(preferred, config.fallbacks), reason, "", None, preferred)
    priced = [(tier, name, output_price(name, team_id=team_id, at=at)) for tier, name in config.tiers]
    within = [(tier, name, price) for tier, name, price in priced if price is not None and price <= cap]
    over = (
        f"{preferred} (${_usd(preferred_price)})"
        if preferred_price is not None
        else f"{preferred or 'no model'} (no price)"
    )
    if within:
        tier, name, price = within[-1]  # tiers are in TIER_ORDER: the last one within the cap is the best
        reason = f"cost cap ${_usd(cap)}/M output: {over} is above it; {tier} tier ({name}, ${_usd(price)})"
    elif not priced:
        reason = f"cost cap ${_usd(cap)}/M output: {over} is above it and no tiers are set; served as requested"
        return RouteDecision(preferred, _chain(preferred, config.fallbacks), reason, "", None, preferred)
    else:
        # Prices changed since the policy was saved; the cheapest known tier is the least bad choice.
        known = [(tier, name, price) for tier, name, price in priced if price is not None] or priced
        tier, name, _ = min(known, key=lambda entry: entry[2] if entry[2] is not None else Decimal(0))
        reason = f"cost cap ${_usd(cap)}/M output: no tier within it; cheapest tier {tier} ({name})"
        logger.warning("no model within the routing cost cap", extra={"cap": str(cap), "model": name})
    return RouteDecision(name, _chain(name, config.fallbacks), reason, tier, None, preferred or name)


def route(*, team_id: int, application_id: int, requested_model: str, messages: list[dict[str, Any]]) -> RouteDecision:
    """The model an application's request goes to first, its fallbacks and why."""
    return decide(
        policy_for(application_id=application_id),
        requested_model=requested_model,
        messages=messages,
        is_available=lambda name: model_for(team_id=team_id, name=name) is not None,
        team_id=team_id,
    )
