"""Effective-dated prices of the catalog's models, cached in each process.

A price belongs to one model of the gateway's catalog (costs.models.ModelPrice.language_model):
a team's own model is priced by its team, whatever its name, and never takes the price of a
shared model of the same name. A name a team calls resolves as the gateway's catalog does:
the team's own model of that name first, else the shared one (a dated snapshot such as
"gpt-4o-2024-08-06" costs what its alias costs unless it has its own model). Names no catalog
model has fall back to the list prices (rows without a model), for calls the gateway never
served (ingested traces).

A model without a price is not silently free: `worst_case_cost` raises `ModelUnpriced` (the
gateway refuses the call while a budget applies), `call_cost` charges 0 and logs it once.
`is_free` prices say in so many words that a model costs nothing.

The whole table is small (a row per model and price change, a name per catalog model), so
each process keeps all of it, keyed by a generation token in Django's shared cache (Redis in
production). A price change, or a new catalog model (which may shadow a shared name), writes
a new token and every process reloads on its next lookup: one shared-cache read per lookup,
no database query on a hit.

A call's cost is computed once, when it is recorded, with the price in force at the call's
time; a later price change applies from its date and never rewrites stored costs.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import transaction
from django.utils import timezone

from accounts import roles
from compliance.services import audit_record
from core.errors import ApplicationError, ValidationFailed
from core.generation_cache import generation_bump_key, generation_token
from costs import hooks
from costs.hooks import CatalogModel
from costs.models import USD_QUANTUM, ModelPrice

if TYPE_CHECKING:
    from accounts.caller import Caller

logger = logging.getLogger(__name__)

_GENERATION_KEY = "costs:prices:generation"
_MILLION = Decimal(1_000_000)
ZERO_USD = Decimal("0.00000000")
# Providers answer with dated snapshots ("gpt-4o-2024-08-06"); they cost what the alias costs
# unless the snapshot has its own price.
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")

K = TypeVar("K")
_History = tuple[list[datetime], list[ModelPrice]]  # sorted effective_from list, prices in the same order


class ModelUnpriced(ApplicationError):
    """A call to a model without a price while a budget applies: its cost cannot be bounded."""

    status_code = 409
    error_type = "invalid_request_error"
    default_code = "model_unpriced"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"Model '{model}' has no price; set a price or mark it free before a budget can apply to its calls.",
            param="model",
        )
        self.model = model


@dataclass(frozen=True)
class _PriceTable:
    generation: str
    by_model_id: dict[int, _History]
    # (team id or None for the shared catalog, name) -> catalog model id, every catalog model
    model_ids: dict[tuple[int | None, str], int]
    list_prices: dict[str, _History]


def _add(history: dict[K, _History], key: K, price: ModelPrice) -> None:
    starts, prices = history.setdefault(key, ([], []))
    starts.append(price.effective_from)
    prices.append(price)


class PriceCache:
    def __init__(self) -> None:
        self._table: _PriceTable | None = None
        self._lock = threading.Lock()
        self._warned: set[tuple[int | None, str]] = set()

    def _generation(self) -> str:
        return generation_token(_GENERATION_KEY)

    def table(self) -> _PriceTable:
        # Read the token before the database, so a table is never stored under a newer token.
        generation = self._generation()
        table = self._table
        if table is not None and table.generation == generation:
            return table
        by_model_id: dict[int, _History] = {}
        list_prices: dict[str, _History] = {}
        for price in ModelPrice.objects.order_by("effective_from", "id"):
            if price.language_model_id is not None:
                _add(by_model_id, price.language_model_id, price)
            else:
                _add(list_prices, price.model, price)
        model_ids: dict[tuple[int | None, str], int] = {
            (team_id, name): model_id for model_id, team_id, name in hooks.catalog_models()
        }
        table = _PriceTable(
            generation=generation,
            by_model_id=by_model_id,
            model_ids=model_ids,
            list_prices=list_prices,
        )
        with self._lock:
            self._table = table
        return table

    def clear(self) -> None:
        with self._lock:
            self._table = None

    def warn_once(self, team_id: int | None, model: str) -> None:
        if (team_id, model) not in self._warned:
            self._warned.add((team_id, model))
            logger.warning(
                "no price for model; its calls cost 0 and are refused while a budget applies",
                extra={"model": model, "team_id": team_id},
            )


price_cache = PriceCache()


def prices_changed() -> None:
    """Invalidate every process's price table: now, and again when the transaction commits."""
    generation_bump_key(_GENERATION_KEY)


def _in_force(history: _History | None, at: datetime) -> ModelPrice | None:
    if history is None:
        return None
    starts, prices = history
    index = bisect.bisect_right(starts, at) - 1
    return prices[index] if index >= 0 else None


def catalog_model_id(*, team_id: int | None, model: str) -> int | None:
    """The catalog model a team means by `model`: its own, else the shared one (None: neither)."""
    model_ids = price_cache.table().model_ids
    for name in (model, _SNAPSHOT_SUFFIX.sub("", model)):
        if team_id is not None and (team_id, name) in model_ids:
            return model_ids[(team_id, name)]
        if (None, name) in model_ids:
            return model_ids[(None, name)]
    return None


def price_for(*, team_id: int | None, model: str, at: datetime, model_id: int | None = None) -> ModelPrice | None:
    """The price in force at `at` of the model `team_id` calls `model` (team None: the shared
    catalog), or of catalog model `model_id` when given (the gateway knows which one it served).
    None: the model has no price then."""
    table = price_cache.table()
    if model_id is None:
        model_id = catalog_model_id(team_id=team_id, model=model)
    if model_id is not None:
        return _in_force(table.by_model_id.get(model_id), at)
    for name in (model, _SNAPSHOT_SUFFIX.sub("", model)):
        if name in table.list_prices:
            return _in_force(table.list_prices[name], at)
    return None


def _usd(amount: Decimal) -> Decimal:
    return amount.quantize(USD_QUANTUM, rounding=ROUND_HALF_UP)


def _cost(price: ModelPrice, *, input_tokens: int, output_tokens: int, cached_tokens: int) -> Decimal:
    cached = min(max(cached_tokens, 0), max(input_tokens, 0))
    uncached = max(input_tokens, 0) - cached
    total = (
        uncached * price.input_per_million
        + cached * price.cached_input_price
        + max(output_tokens, 0) * price.output_per_million
    )
    return _usd(total / _MILLION)


def call_cost(
    *,
    team_id: int | None,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    at: datetime,
    model_id: int | None = None,
) -> Decimal:
    """What a call cost in USD. `input_tokens` includes `cached_tokens` (as OpenAI counts them);
    cached tokens are charged at the cached-input price. A model without a price costs 0 (logged
    once); the gateway never serves one while a budget applies (see `worst_case_cost`)."""
    price = price_for(team_id=team_id, model=model, at=at, model_id=model_id)
    if price is None:
        price_cache.warn_once(team_id, model)
        return ZERO_USD
    return _cost(price, input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached_tokens)


def worst_case_cost(
    *, team_id: int | None, model: str, input_tokens: int, max_tokens: int, at: datetime, model_id: int | None = None
) -> Decimal:
    """The most a call can cost: every input token at the full input price plus `max_tokens`
    output tokens. Raises ModelUnpriced when the model has no price (nothing bounds its cost)."""
    price = price_for(team_id=team_id, model=model, at=at, model_id=model_id)
    if price is None:
        raise ModelUnpriced(model)
    return _cost(price, input_tokens=input_tokens, output_tokens=max_tokens, cached_tokens=0)


def known_models(*, team_id: int | None, at: datetime) -> list[str]:
    """Names `team_id` can price at `at` (its own and shared catalog models with a price), for
    validation and pickers."""
    table = price_cache.table()
    names = {
        name
        for (owner, name), model_id in table.model_ids.items()
        if (owner is None or owner == team_id)
        and price_for(team_id=team_id, model=name, at=at) is not None
        and catalog_model_id(team_id=team_id, model=name) == model_id
    }
    return sorted(names)


# Writes ----------------------------------------------------------------------------------


def _require_price_manager(caller: Caller | None, *, team_id: int | None, name: str) -> None:
    """A team's model: whoever manages that team's catalog. A shared model or a list price
    (they apply to every team): operators (superusers). caller=None is trusted provisioning."""
    if caller is None:
        return
    caller.require_permission_or_operator(
        roles.MANAGE_CATALOG,
        team_id=team_id,
        action="set the prices of the team's models",
        operators_only=(
            f"Only operators (superusers) can set the price of '{name}': shared models and list prices "
            "apply to every team. A team's catalog managers price the team's own models."
        ),
    )


def _price_state(price: ModelPrice | None) -> dict[str, Any] | None:
    if price is None:
        return None
    return {
        "input_per_million": price.input_per_million,
        "output_per_million": price.output_per_million,
        "cached_input_per_million": price.cached_input_per_million,
        "is_free": price.is_free,
        "effective_from": price.effective_from,
    }


def _target(*, model: str | CatalogModel, team_id: int | None) -> tuple[CatalogModel | None, str]:
    if not isinstance(model, str):
        return model, model.name
    name = model.strip()
    if not name:
        raise ValidationFailed("Give the name of the model the price applies to.", param="model")
    found = hooks.catalog_model_find(team_id=team_id, name=name)
    if team_id is not None and found is None:
        raise ValidationFailed(
            f"No model named '{name}' in team {team_id}'s catalog: add the model first, then price it.", param="model"
        )
    return found, name  # None for a shared name without a model: a list price


def price_set(
    *,
    caller: Caller | None,
    model: str | CatalogModel,
    team_id: int | None = None,
    input_per_million: Decimal = ZERO_USD,
    output_per_million: Decimal = ZERO_USD,
    cached_input_per_million: Decimal | None = None,
    is_free: bool = False,
    effective_from: datetime,
) -> ModelPrice:
    """Price a catalog model from `effective_from` on: a LanguageModel, or a name in `team_id`'s
    catalog (None: the shared catalog, where a name without a model sets a list price).

    Team models are priced by the team's catalog managers, shared models and list prices by
    operators. `is_free` marks the model free (every price zero). Audited with the price in
    force before and the new one; costs already recorded are never rewritten.
    """
    target, name = _target(model=model, team_id=team_id)
    owner = target.team_id if target is not None else None
    _require_price_manager(caller, team_id=owner, name=name)
    values = {
        "input_per_million": input_per_million,
        "output_per_million": output_per_million,
        "cached_input_per_million": cached_input_per_million,
    }
    for field, value in values.items():
        if value is not None and (not isinstance(value, Decimal) or not value.is_finite() or value < 0):
            raise ValidationFailed(f"{field} must be zero or more (USD per million tokens).", param=field)
        if value is not None and value >= Decimal("1000000"):
            raise ValidationFailed(f"{field} must be less than 1,000,000 USD per million tokens.", param=field)
    if is_free:
        paid = [field for field, value in values.items() if value]
        if paid:
            raise ValidationFailed(
                f"A free model costs nothing: leave {paid[0]} empty or zero, or unset is_free.", param=paid[0]
            )
        values = {"input_per_million": ZERO_USD, "output_per_million": ZERO_USD, "cached_input_per_million": None}
    if timezone.is_naive(effective_from):
        raise ValidationFailed(
            "effective_from needs a time zone (for example 2025-01-01T00:00:00Z).", param="effective_from"
        )
    rows = (
        ModelPrice.objects.filter(language_model_id=target.id)
        if target is not None
        else ModelPrice.objects.filter(language_model__isnull=True, model=name)
    )
    with transaction.atomic():
        before = rows.filter(effective_from__lte=effective_from).order_by("-effective_from").first()
        price, _ = rows.update_or_create(
            effective_from=effective_from,
            defaults={
                **values,
                "is_free": is_free,
                "model": name,
                "language_model_id": target.id if target is not None else None,
            },
        )
        audit_record(
            actor=caller,
            action="model.price_set",
            target_type="model" if target is not None else "list_price",
            target_id=str(target.id) if target is not None else name,
            team_id=owner,
            before=_price_state(before),
            after=_price_state(price),
            metadata={"model": name},
        )
        prices_changed()
    logger.info(
        "model price set",
        extra={"model": name, "model_id": target.id if target is not None else None, "team_id": owner},
    )
    return price


def list_prices_adopt(*, model: CatalogModel) -> int:
    """A new shared catalog model takes over the list prices of its name (their history with
    them). Team models never do: a team's model is priced by its team. Returns the rows moved."""
    if model.team_id is not None:
        return 0
    moved = ModelPrice.objects.filter(language_model__isnull=True, model=model.name).update(language_model_id=model.id)
    prices_changed()  # a new catalog name may shadow a list price or another name: reload either way
    return moved
