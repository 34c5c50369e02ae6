"""Effective-dated model prices, cached in each process.

The whole price table is small (a row per model and price change), so each process keeps
all of it, keyed by a generation token in Django's shared cache (Redis in production). A
price change writes a new token and every process reloads on its next lookup: one
shared-cache read per lookup, no database query on a hit.

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

from controlplane.generation_cache import generation_bump_key, generation_token
from costs.models import USD_QUANTUM, ModelPrice

logger = logging.getLogger(__name__)

_GENERATION_KEY = "costs:prices:generation"
_MILLION = Decimal(1_000_000)
# Providers answer with dated snapshots ("gpt-4o-2024-08-06"); they cost what the alias costs
# unless the snapshot has its own price.
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


@dataclass(frozen=True)
class _PriceTable:
    generation: str
    # model -> (sorted effective_from list, prices in the same order)
    by_model: dict[str, tuple[list[datetime], list[ModelPrice]]]


class PriceCache:
    def __init__(self) -> None:
        self._table: _PriceTable | None = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def _generation(self) -> str:
        return generation_token(_GENERATION_KEY)

    def table(self) -> _PriceTable:
        # Read the token before the database, so a table is never stored under a newer token.
        generation = self._generation()
        table = self._table
        if table is not None and table.generation == generation:
            return table
        by_model: dict[str, tuple[list[datetime], list[ModelPrice]]] = {}
        for price in ModelPrice.objects.order_by("model", "effective_from"):
            starts, prices = by_model.setdefault(price.model, ([], []))
            starts.append(price.effective_from)
            prices.append(price)
        table = _PriceTable(generation=generation, by_model=by_model)
        with self._lock:
            self._table = table
        return table

    def clear(self) -> None:
        with self._lock:
            self._table = None

    def warn_once(self, model: str) -> None:
        if model not in self._warned:
            self._warned.add(model)
            logger.warning("no price for model; its calls cost 0 until one is set", extra={"model": model})


price_cache = PriceCache()


def prices_changed() -> None:
    """Invalidate every process's price table: now, and again when the transaction commits."""
    generation_bump_key(_GENERATION_KEY)


def price_for(*, model: str, at: datetime) -> ModelPrice | None:
    """The price of `model` in force at `at`, or None if the model has no price then."""
    by_model = price_cache.table().by_model
    entry = by_model.get(model)
    if entry is None:
        alias = _SNAPSHOT_SUFFIX.sub("", model)
        entry = by_model.get(alias) if alias != model else None
    if entry is None:
        return None
    starts, prices = entry
    index = bisect.bisect_right(starts, at) - 1
    return prices[index] if index >= 0 else None


def _usd(amount: Decimal) -> Decimal:
    return amount.quantize(USD_QUANTUM, rounding=ROUND_HALF_UP)


def call_cost(*, model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0, at: datetime) -> Decimal:
    """What a call cost in USD. `input_tokens` includes `cached_tokens` (as OpenAI counts them);
    cached tokens are charged at the cached-input price. A model without a price costs 0 (logged once)."""
    price = price_for(model=model, at=at)
    if price is None:
        price_cache.warn_once(model)
        return Decimal("0.00000000")
    cached = min(max(cached_tokens, 0), max(input_tokens, 0))
    uncached = max(input_tokens, 0) - cached
    total = (
        uncached * price.input_per_million
        + cached * price.cached_input_price
        + max(output_tokens, 0) * price.output_per_million
    )
    return _usd(total / _MILLION)


def worst_case_cost(*, model: str, input_tokens: int, max_tokens: int, at: datetime) -> Decimal:
    """The most a call can cost: every input token at the full input price plus `max_tokens` output tokens."""
    return call_cost(model=model, input_tokens=input_tokens, output_tokens=max_tokens, cached_tokens=0, at=at)


def known_models(*, at: datetime) -> list[str]:
    """Models with a price in force at `at`, for validation and pickers."""
    return sorted(name for name in price_cache.table().by_model if price_for(model=name, at=at) is not None)
