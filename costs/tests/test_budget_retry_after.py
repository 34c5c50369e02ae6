"""A budget's refusal says when to retry: `retry_after`, sent as `Retry-After` by the API."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from core.api.exceptions import exception_handler
from costs.budgets import BudgetExceeded, period_bounds
from costs.tests.factories import reservation_for

pytestmark = pytest.mark.django_db


def reserve(world, amount: str, *, at: datetime):
    return reservation_for(world, amount, at=at)


def test_a_daily_budget_says_to_retry_when_its_period_resets(team_a, make_budget):
    make_budget(team_a.team, name="Daily", period="daily", amount_usd=Decimal("1.00"))
    now = timezone.now()
    _, resets_at = period_bounds(period="daily", at=now, time_zone=team_a.team.time_zone)
    assert resets_at is not None

    with pytest.raises(BudgetExceeded) as refused:
        reserve(team_a, "2.00", at=now)
    after = datetime.now(UTC)

    assert refused.value.resets_at == resets_at
    retry_after = refused.value.retry_after
    assert retry_after is not None
    # whole seconds from the refusal to the reset: between those counted from just before and just after it
    assert math.ceil((resets_at - after).total_seconds()) <= retry_after <= math.ceil((resets_at - now).total_seconds())


def test_a_spent_total_budget_gives_no_retry_after(team_a, make_budget):
    make_budget(team_a.team, name="Forever", period="total", amount_usd=Decimal("1.00"))

    with pytest.raises(BudgetExceeded) as refused:
        reserve(team_a, "2.00", at=timezone.now())

    assert refused.value.resets_at is None
    assert refused.value.retry_after is None


def test_a_total_budget_held_by_calls_in_flight_says_retry_in_a_second(team_a, make_budget):
    make_budget(team_a.team, name="Forever", period="total", amount_usd=Decimal("1.00"))
    reserve(team_a, "0.80", at=timezone.now())  # in flight, not settled

    with pytest.raises(BudgetExceeded) as refused:
        reserve(team_a, "0.50", at=timezone.now())

    assert refused.value.retry_after == 1


def test_the_api_sends_retry_after_with_a_budget_refusal():
    refusal = BudgetExceeded("over the 'Daily' budget", budget_id=1, resets_at=timezone.now().replace(microsecond=0))
    refusal.retry_after = 3600

    response = exception_handler(refusal, {})

    assert response is not None
    assert response.status_code == 429
    assert response["Retry-After"] == "3600"
    assert response.data == {
        "error": {
            "type": "insufficient_quota",
            "message": "over the 'Daily' budget",
            "param": None,
            "code": "budget_exceeded",
        }
    }


def test_a_budget_refusal_whose_reset_has_passed_still_says_at_least_one_second():
    refusal = BudgetExceeded("over", budget_id=1, resets_at=datetime(2000, 1, 1, tzinfo=UTC))

    assert refusal.retry_after == 1
    assert exception_handler(refusal, {})["Retry-After"] == "1"  # type: ignore[index]
