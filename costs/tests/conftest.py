from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from costs.budgets import rule_cache
from costs.models import Budget
from costs.pricing import price_cache
from costs.rollups import rollups_apply
from costs.services import budget_create
from costs.tests.factories import NotificationFactory
from observability.models import Call
from observability.tests.factories import CallFactory

NOW = datetime(2025, 3, 12, 15, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Iterator[None]:
    # Per-process caches outlive a test's database transaction: start and end each test empty.
    price_cache.clear()
    rule_cache.clear()
    yield
    price_cache.clear()
    rule_cache.clear()


def build_call(world: Any, **fields: Any) -> Call:
    """An unsaved gpt-4o call of `world` at NOW, for `record` to store as the recorder does."""
    values: dict[str, Any] = {
        "created_at": NOW,
        "request_model": "gpt-4o",
        "response_model": "gpt-4o",
        "input_tokens": 1000,
        "output_tokens": 100,
        "cost_usd": Decimal("0.00350000"),
    }
    values.update(fields)
    return CallFactory.build(world=world, **values)


@pytest.fixture
def record() -> Callable[[list[Call]], list[Call]]:
    """Record calls as the gateway's recorder does: bulk insert, then rollups in the same transaction."""
    from django.db import transaction

    def run(calls: list[Call]) -> list[Call]:
        with transaction.atomic():
            Call.objects.bulk_create(calls)
            rollups_apply(calls=calls)
        return calls

    return run


@pytest.fixture
def make_budget() -> Callable[..., Budget]:
    def build(team: Any, **fields: Any) -> Budget:
        values: dict[str, Any] = {
            "name": "Team monthly",
            "scope": "team",
            "period": "monthly",
            "amount_usd": Decimal("10.00"),
        }
        values.update(fields)
        budget, _ = budget_create(caller=None, team=team, **values)
        return budget

    return build


@pytest.fixture
def notification_factory(db: None) -> type[NotificationFactory]:
    return NotificationFactory
