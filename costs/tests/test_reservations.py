"""Durable budget reservations: released or settled exactly once, and reclaimed when nothing settles them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from controlplane.beat import BEAT_SCHEDULE
from costs import tasks
from costs.budgets import budget_reservations_reclaim, budget_reservations_release, reclaim_age
from costs.models import BudgetReservation
from costs.services import budget_release, budget_settle_many
from costs.tests.conftest import NOW, build_call
from costs.tests.factories import reservation_for
from costs.tests.test_budgets import counters, reserve

pytestmark = pytest.mark.django_db


def states() -> list[str]:
    return list(BudgetReservation.objects.order_by("id").values_list("state", flat=True))


def age_every_reservation(by: timedelta) -> None:
    BudgetReservation.objects.update(created_at=timezone.now() - by)


def test_a_reservation_is_recorded_as_an_open_row_per_period_it_holds(team_a, make_budget):
    make_budget(team_a.team, name="team")
    make_budget(team_a.team, name="app", scope="application", scope_value=str(team_a.application.id))

    reservation = reserve(team_a, "0.50")

    rows = list(BudgetReservation.objects.order_by("period_id").values("reservation_id", "period_id", "units", "state"))
    assert rows == [
        {"reservation_id": reservation.id, "period_id": item.period_id, "units": 50_000_000, "state": "open"}
        for item in sorted(reservation.items, key=lambda item: item.period_id)
    ]


def test_the_gateway_names_the_reservation_by_its_call_id(team_a, make_budget):
    make_budget(team_a.team)
    call_id = "0190f0e2-7c4a-7000-8000-000000000001"

    reservation = reservation_for(team_a, "1", at=NOW, reservation_id=call_id)

    assert str(reservation.id) == call_id
    assert [str(value) for value in BudgetReservation.objects.values_list("reservation_id", flat=True)] == [call_id]


def test_a_refused_reservation_leaves_no_row(team_a, make_budget):
    make_budget(team_a.team, name="roomy", amount_usd=Decimal("100"))
    make_budget(team_a.team, name="tight", scope="model", scope_value="gpt-4o", amount_usd=Decimal("1"))

    with pytest.raises(Exception, match="tight"):
        reserve(team_a, "2.00")

    assert BudgetReservation.objects.count() == 0


def test_a_free_call_holds_nothing_and_leaves_no_row(team_a, make_budget):
    make_budget(team_a.team)

    reservation = reserve(team_a, "0")

    assert reservation.items
    assert BudgetReservation.objects.count() == 0


def test_releasing_twice_gives_back_once(team_a, make_budget):
    budget = make_budget(team_a.team, amount_usd=Decimal("10"))
    reservation = reserve(team_a, "2.00")
    kept = reserve(team_a, "1.00")

    budget_release(reservation=reservation)
    released_again = budget_reservations_release(reservation_ids=[reservation.id])

    assert released_again == 0
    assert counters(budget) == (Decimal(0), Decimal("1.00"))
    assert states() == ["released", "open"]
    budget_release(reservation=kept)


def test_a_settlement_arriving_after_a_release_counts_the_spend_and_gives_back_nothing_more(team_a, make_budget):
    # given a call whose reservation was released (the reclaim gave up on it), then its record arrives
    budget = make_budget(team_a.team, amount_usd=Decimal("10"))
    reservation = reserve(team_a, "2.00")
    other = reserve(team_a, "1.00")
    settlement = reservation.settlement(Decimal("0.40"))
    budget_reservations_release(reservation_ids=[reservation.id])

    budget_settle_many([settlement])

    # then its cost is spent and only the other call stays reserved (nothing given back twice)
    assert counters(budget) == (Decimal("0.40"), Decimal("1.00"))
    assert states() == ["released", "open"]
    budget_release(reservation=other)


def test_a_release_after_the_settlement_gives_nothing_back(team_a, make_budget):
    budget = make_budget(team_a.team, amount_usd=Decimal("10"))
    reservation = reserve(team_a, "2.00")
    other = reserve(team_a, "1.00")
    budget_settle_many([reservation.settlement(Decimal("0.40"))])

    released = budget_reservations_release(reservation_ids=[reservation.id])

    assert released == 0
    assert counters(budget) == (Decimal("0.40"), Decimal("1.00"))
    assert states() == ["settled", "open"]
    budget_release(reservation=other)


def test_a_settlement_spooled_before_reservations_had_rows_still_settles(team_a, make_budget):
    budget = make_budget(team_a.team, amount_usd=Decimal("10"))
    reservation = reserve(team_a, "2.00")
    BudgetReservation.objects.all().delete()  # as if reserved by the previous release
    legacy = {key: value for key, value in reservation.settlement(Decimal("0.40")).items() if key != "reservation"}

    budget_settle_many([legacy])

    assert counters(budget) == (Decimal("0.40"), Decimal(0))


def test_the_reclaim_releases_old_reservations_without_a_record_and_keeps_young_ones(team_a, make_budget):
    budget = make_budget(team_a.team, amount_usd=Decimal("10"))
    reserve(team_a, "2.00")
    age_every_reservation(reclaim_age() + timedelta(seconds=1))
    young = reserve(team_a, "1.00")

    result = budget_reservations_reclaim()

    assert (result.settled, result.released) == (0, 1)
    assert counters(budget) == (Decimal(0), Decimal("1.00"))
    assert states() == ["released", "open"]
    budget_release(reservation=young)


def test_the_reclaim_settles_an_old_reservation_whose_call_was_recorded_without_its_settlement(
    team_a, make_budget, record
):
    budget = make_budget(team_a.team, amount_usd=Decimal("10"))
    reservation = reserve(team_a, "2.00")
    record([build_call(team_a, id=reservation.id, cost_usd=Decimal("0.30"))])
    age_every_reservation(timedelta(hours=3))

    first = budget_reservations_reclaim()
    second = budget_reservations_reclaim()

    assert (first.settled, first.released) == (1, 0)
    assert (second.settled, second.released) == (0, 0)
    assert counters(budget) == (Decimal("0.30"), Decimal(0))
    assert states() == ["settled"]


def test_the_reclaim_deletes_closed_rows_past_their_retention(team_a, make_budget):
    make_budget(team_a.team)
    budget_release(reservation=reserve(team_a, "1.00"))
    BudgetReservation.objects.update(closed_at=timezone.now() - timedelta(days=2))

    result = budget_reservations_reclaim()

    assert result.deleted == 1
    assert BudgetReservation.objects.count() == 0


def test_the_reclaim_task_runs_periodically_and_takes_an_age(team_a, make_budget):
    budget = make_budget(team_a.team)
    reserve(team_a, "1.00")

    outcome = tasks.budget_reservations_reclaim.apply(kwargs={"older_than_seconds": 0}).get()

    assert outcome == {"settled": 0, "released": 1, "deleted": 0}
    assert counters(budget) == (Decimal(0), Decimal(0))
    assert BEAT_SCHEDULE["costs-budget-reservations-reclaim"]["task"] == tasks.budget_reservations_reclaim.name
