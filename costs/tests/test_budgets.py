from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import api_key_create
from core.testing import requires_postgresql
from core.tests.threads import run_at_once
from costs.budgets import BudgetExceeded, period_bounds
from costs.models import BudgetAlert, BudgetPeriod, BudgetReservation
from costs.services import budget_release, budget_settle, budget_settle_many, budget_update
from costs.tests.conftest import NOW
from costs.tests.factories import reservation_for

pytestmark = pytest.mark.django_db


def reserve(world, amount: str, *, at=NOW, **fields):
    return reservation_for(world, amount, at=at, **fields)


def counters(budget, at=NOW) -> tuple[Decimal, Decimal]:
    start, _ = period_bounds(period=budget.period, at=at, time_zone=budget.team.time_zone)
    period = BudgetPeriod.objects.get(budget=budget, period_start=start)
    return period.spent_usd, period.reserved_usd


# Periods --------------------------------------------------------------------------------


def test_periods_are_calendar_aligned_in_the_team_time_zone():
    at = datetime(2025, 3, 12, 23, 30, tzinfo=UTC)  # already Thursday 13 March 00:30 in Paris

    assert period_bounds(period="daily", at=at, time_zone="Europe/Paris") == (
        datetime(2025, 3, 12, 23, 0, tzinfo=UTC),
        datetime(2025, 3, 13, 23, 0, tzinfo=UTC),
    )
    assert period_bounds(period="weekly", at=at, time_zone="Europe/Paris") == (
        datetime(2025, 3, 9, 23, 0, tzinfo=UTC),  # Monday 10 March, midnight in Paris
        datetime(2025, 3, 16, 23, 0, tzinfo=UTC),
    )
    assert period_bounds(period="monthly", at=at, time_zone="Europe/Paris") == (
        datetime(2025, 2, 28, 23, 0, tzinfo=UTC),
        datetime(2025, 3, 31, 22, 0, tzinfo=UTC),  # summer time began on 30 March
    )
    assert period_bounds(period="total", at=at, time_zone="Europe/Paris")[1] is None


# Reserve, settle, release ---------------------------------------------------------------


def test_without_budgets_a_reservation_is_empty_and_costs_no_query_once_warm(team_a, django_assert_num_queries):
    reserve(team_a, "1.00")

    with django_assert_num_queries(0):
        reservation = reserve(team_a, "1.00")
        budget_settle(reservation=reservation, actual=Decimal("0.50"))

    assert reservation.items == ()
    assert reservation.downgrade_to is None


def test_reserve_then_settle_replaces_the_reservation_by_the_actual_cost(team_a, make_budget):
    budget = make_budget(team_a.team, amount_usd=Decimal("10.00"))

    reservation = reserve(team_a, "2.00")
    assert counters(budget) == (Decimal(0), Decimal("2.00"))
    budget_settle(reservation=reservation, actual=Decimal("0.75"))

    assert counters(budget) == (Decimal("0.75"), Decimal(0))


@requires_postgresql("the one-statement reservation is PostgreSQL's (SQLite has no UPDATE inside WITH)")
def test_one_budget_is_reserved_with_its_durable_row_in_one_statement_and_several_in_one_transaction(
    team_a, make_budget, django_assert_num_queries
):
    make_budget(team_a.team, amount_usd=Decimal("10.00"))
    reserve(team_a, "0.10")  # warm: rules and period rows cached

    with django_assert_num_queries(1) as one:
        reserve(team_a, "0.10")
    make_budget(team_a.team, name="App", scope="application", scope_value=str(team_a.application.id))
    reserve(team_a, "0.10")
    with django_assert_num_queries(4) as two:  # SAVEPOINT, two statements, RELEASE (inside the test's transaction)
        reserve(team_a, "0.10")

    assert one.captured_queries[0]["sql"].startswith("WITH reserved AS (UPDATE costs_budgetperiod")
    assert "INSERT INTO costs_budgetreservation" in one.captured_queries[0]["sql"]
    assert [query["sql"].split()[0] for query in two.captured_queries] == ["SAVEPOINT", "WITH", "WITH", "RELEASE"]
    assert BudgetReservation.objects.filter(state="open").count() == 1 + 1 + 2 + 2  # one row per period held


def test_on_sqlite_a_reservation_and_its_row_are_one_local_transaction(team_a, make_budget, django_assert_num_queries):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's form of the reservation")
    make_budget(team_a.team, amount_usd=Decimal("10.00"))
    reserve(team_a, "0.10")

    with django_assert_num_queries(4) as one:
        reserve(team_a, "0.10")

    assert [query["sql"].split()[0] for query in one.captured_queries] == ["SAVEPOINT", "UPDATE", "INSERT", "RELEASE"]


def test_settling_many_calls_updates_each_period_once_and_fires_a_threshold_once(team_a, make_budget):
    budget = make_budget(team_a.team, amount_usd=Decimal("10.00"), thresholds=[50])
    settlements = [reserve(team_a, "2.00").settlement(Decimal("2.00")) for _ in range(3)]
    assert counters(budget) == (Decimal(0), Decimal("6.00"))

    with CaptureQueriesContext(connection) as queries:
        budget_settle_many(settlements)

    assert counters(budget) == (Decimal("6.00"), Decimal(0))
    updates = [query["sql"].split()[:2] for query in queries.captured_queries if query["sql"].startswith("UPDATE")]
    assert updates == [["UPDATE", "costs_budgetreservation"], ["UPDATE", "costs_budgetperiod"]]
    assert list(BudgetAlert.objects.filter(budget=budget).values_list("threshold", flat=True)) == [50]


def test_a_reservation_handed_over_for_settlement_cannot_be_settled_again(team_a, make_budget):
    budget = make_budget(team_a.team)
    reservation = reserve(team_a, "1.00")
    settlement = reservation.settlement(Decimal("0.25"))

    with pytest.raises(ValueError, match="already settled or released"):
        budget_settle(reservation=reservation, actual=Decimal("0.25"))
    assert counters(budget) == (Decimal(0), Decimal("1.00"))  # nothing settled until the settlement is applied
    budget_settle_many([settlement])
    assert counters(budget) == (Decimal("0.25"), Decimal(0))


def test_release_gives_the_reservation_back(team_a, make_budget):
    budget = make_budget(team_a.team)
    reservation = reserve(team_a, "2.00")

    budget_release(reservation=reservation)

    assert counters(budget) == (Decimal(0), Decimal(0))
    with pytest.raises(ValueError, match="already settled or released"):
        budget_settle(reservation=reservation, actual=Decimal(1))


def test_a_blocking_budget_refuses_naming_itself_its_limit_spend_and_reset_and_reserves_nothing(team_a, make_budget):
    # given a roomy team budget and a tight application budget that overlap
    team_budget = make_budget(team_a.team, name="Team", amount_usd=Decimal("100"))
    app_budget = make_budget(
        team_a.team,
        name="Support app daily",
        scope="application",
        scope_value=str(team_a.application.id),
        period="daily",
        amount_usd=Decimal("1.00"),
    )
    budget_settle(reservation=reserve(team_a, "0.60"), actual=Decimal("0.60"))

    # when a request needs more than the application budget has left
    with pytest.raises(BudgetExceeded) as refused:
        reserve(team_a, "0.50")

    # then it is refused with a message that says which budget, limit, spend and reset
    error = refused.value
    assert error.status_code == 429
    assert error.error_type == "insufficient_quota"
    assert error.code == "budget_exceeded"
    assert error.budget_id == app_budget.id
    assert "'Support app daily'" in error.message
    assert "limit $1.00000000" in error.message
    assert "spent $0.60000000 and $0.00000000 reserved" in error.message
    assert "resets at 2025-03-13T00:00:00+00:00 (UTC)" in error.message
    assert error.resets_at == datetime(2025, 3, 13, tzinfo=UTC)
    # and nothing was reserved on the team budget either
    assert counters(team_budget) == (Decimal("0.60"), Decimal(0))
    assert counters(app_budget) == (Decimal("0.60"), Decimal(0))


def test_a_request_that_exactly_fits_is_served(team_a, make_budget):
    budget = make_budget(team_a.team, amount_usd=Decimal("1.00"))

    reservation = reserve(team_a, "1.00")

    assert counters(budget) == (Decimal(0), Decimal("1.00"))
    with pytest.raises(BudgetExceeded):
        reserve(team_a, "0.00000001")
    budget_release(reservation=reservation)


def test_budgets_apply_only_to_their_scope(team_a, make_budget):
    api_key_create(caller=None, application=team_a.application, name="k")
    key_id = team_a.application.api_keys.get().id
    for scope, value in (
        ("api_key", str(key_id)),
        ("end_user", "alice"),
        ("model", "gpt-4o"),
        ("metadata", "feature=search"),
    ):
        make_budget(team_a.team, name=scope, scope=scope, scope_value=value, amount_usd=Decimal("1.00"))

    # a call outside every scope passes whatever the amount
    outside = reserve(team_a, "5.00", model="gpt-4o-mini", end_user="bob", metadata={"feature": "chat"})
    assert outside.items == ()
    # each scope refuses a call inside it
    for kwargs in (
        {"api_key_id": key_id, "model": "gpt-4o-mini"},
        {"end_user": "alice", "model": "gpt-4o-mini"},
        {"model": "gpt-4o"},
        {"metadata": {"feature": "search"}, "model": "gpt-4o-mini"},
    ):
        with pytest.raises(BudgetExceeded):
            reserve(team_a, "5.00", **kwargs)


def test_a_downgrade_budget_at_its_limit_names_the_cheaper_model_and_does_not_refuse(team_a, make_budget):
    budget = make_budget(team_a.team, action="downgrade", downgrade_model="gpt-4o-mini", amount_usd=Decimal("1.00"))
    budget_settle(reservation=reserve(team_a, "0.90"), actual=Decimal("0.90"))

    downgraded = reserve(team_a, "0.50", model="gpt-4o")
    cheaper = reserve(team_a, "0.50", model="gpt-4o-mini")

    assert downgraded.downgrade_to == "gpt-4o-mini"
    assert downgraded.downgraded_by == (budget.id,)
    assert cheaper.downgrade_to is None
    assert counters(budget) == (Decimal("0.90"), Decimal("1.00"))


def test_a_blocking_budget_wins_over_a_downgrade_budget(team_a, make_budget):
    make_budget(team_a.team, name="soft", action="downgrade", downgrade_model="gpt-4o-mini", amount_usd=Decimal("1"))
    make_budget(team_a.team, name="hard", scope="model", scope_value="gpt-4o", amount_usd=Decimal("1"))

    with pytest.raises(BudgetExceeded, match="'hard'"):
        reserve(team_a, "2.00")
    assert BudgetPeriod.objects.filter(reserved_units__gt=0).count() == 0


def test_a_new_period_starts_from_zero(team_a, make_budget):
    budget = make_budget(team_a.team, period="daily", amount_usd=Decimal("1.00"))
    budget_settle(reservation=reserve(team_a, "1.00"), actual=Decimal("1.00"))
    with pytest.raises(BudgetExceeded):
        reserve(team_a, "0.10")

    reservation = reserve(team_a, "0.10", at=NOW + timedelta(days=1))

    assert counters(budget, at=NOW + timedelta(days=1)) == (Decimal(0), Decimal("0.10"))
    budget_release(reservation=reservation)


def test_a_budget_change_applies_at_once_to_the_current_period(team_a, make_budget):
    budget = make_budget(team_a.team, amount_usd=Decimal("1.00"))
    budget_settle(reservation=reserve(team_a, "1.00", at=datetime.now(UTC)), actual=Decimal("1.00"))
    with pytest.raises(BudgetExceeded):
        reserve(team_a, "0.50", at=datetime.now(UTC))

    budget_update(caller=None, budget=budget, amount_usd=Decimal("2.00"))

    assert reserve(team_a, "0.50", at=datetime.now(UTC)).items


def test_a_budget_created_after_a_cached_no_budget_answer_applies_at_once(team_a, make_budget):
    assert reserve(team_a, "5.00").items == ()

    make_budget(team_a.team, amount_usd=Decimal("1.00"))

    with pytest.raises(BudgetExceeded):
        reserve(team_a, "5.00")


def test_settling_across_a_threshold_fires_it_once_per_period(team_a, make_budget):
    budget = make_budget(team_a.team, amount_usd=Decimal("10.00"))

    budget_settle(reservation=reserve(team_a, "6"), actual=Decimal("5.00"))  # 50%
    budget_settle(reservation=reserve(team_a, "1"), actual=Decimal("1.00"))  # 60%: nothing new
    budget_settle(reservation=reserve(team_a, "3"), actual=Decimal("3.00"))  # 90%: crosses 80

    assert list(
        BudgetAlert.objects.filter(budget=budget).order_by("threshold").values_list("threshold", flat=True)
    ) == [
        50,
        80,
    ]


# Concurrency ----------------------------------------------------------------------------


@requires_postgresql()
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_reservations_never_overspend_a_budget_that_fits_ten(team_a, make_budget):
    # given a budget that fits exactly ten worst-case reservations of $0.10
    budget = make_budget(team_a.team, amount_usd=Decimal("1.00"))
    start, _ = period_bounds(period="monthly", at=NOW, time_zone="UTC")
    served: list[object] = []
    refused: list[BudgetExceeded] = []
    observed_over_limit: list[int] = []
    barrier = threading.Barrier(50)
    lock = threading.Lock()

    def request() -> None:
        try:
            barrier.wait()
            try:
                reservation = reserve(team_a, "0.10")
            except BudgetExceeded as error:
                with lock:
                    refused.append(error)
                return
            with lock:
                served.append(reservation)
            row = BudgetPeriod.objects.filter(budget=budget, period_start=start).values_list(
                "spent_units", "reserved_units", "limit_units"
            )[0]
            if row[0] + row[1] > row[2]:
                observed_over_limit.append(row[0] + row[1])
            budget_settle(reservation=reservation, actual=Decimal("0.10"))
        finally:
            connection.close()

    # when fifty requests arrive at once
    run_at_once([request] * 50)

    # then exactly ten are served and the spend never exceeds the limit
    assert len(served) == 10
    assert len(refused) == 40
    assert observed_over_limit == []
    period = BudgetPeriod.objects.get(budget=budget, period_start=start)
    assert (period.spent_usd, period.reserved_usd) == (Decimal("1.00"), Decimal(0))
