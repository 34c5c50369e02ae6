from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.caller import caller_for_user
from costs import selectors
from costs.models import CostRollup
from costs.tests.conftest import NOW, build_call

pytestmark = pytest.mark.django_db


def rollup(world, granularity: str, dimension: str, key: str, bucket: datetime) -> CostRollup:
    return CostRollup.objects.get(
        team_id=world.team.id, granularity=granularity, dimension=dimension, key=key, bucket_start=bucket
    )


def test_batches_add_up_per_hour_and_day_in_every_dimension(team_a, record):
    # given two batches recorded separately, in two hours of one day
    hour = NOW.replace(minute=0)
    record(
        [
            build_call(team_a, end_user="alice", prompt_name="support", cost_usd=Decimal("0.01"), cached_tokens=100),
            build_call(team_a, end_user="alice", prompt_name="support", cost_usd=Decimal("0.02")),
        ]
    )
    record(
        [
            build_call(
                team_a,
                end_user="bob",
                response_model="gpt-4o-mini",
                created_at=NOW + timedelta(hours=1),
                cost_usd=Decimal("0.00000001"),
                status="error",
            ),
            build_call(
                team_a,
                end_user="alice",
                cache_result="hit",
                cost_usd=Decimal(0),
                cache_saved_usd=Decimal("0.015"),
            ),
        ]
    )

    # then the hourly and daily rows hold the sums
    team_hour = rollup(team_a, "hour", "team", str(team_a.team.id), hour)
    assert (team_hour.calls, team_hour.cost_units, team_hour.input_tokens, team_hour.cached_tokens) == (
        3,
        3_000_000,
        3000,
        100,
    )
    assert (team_hour.cache_hits, team_hour.cache_saved_units) == (1, 1_500_000)
    team_day = rollup(team_a, "day", "team", str(team_a.team.id), hour.replace(hour=0))
    assert (team_day.calls, team_day.cost_units, team_day.error_calls) == (4, 3_000_001, 1)
    alice_day = rollup(team_a, "day", "end_user", "alice", hour.replace(hour=0))
    assert (alice_day.calls, alice_day.cost_units) == (3, 3_000_000)
    assert rollup(team_a, "day", "model", "gpt-4o-mini", hour.replace(hour=0)).calls == 1
    assert rollup(team_a, "day", "prompt", "support", hour.replace(hour=0)).calls == 2
    assert rollup(team_a, "hour", "application", str(team_a.application.id), hour).calls == 3
    # calls without an end user, prompt or key add no row for those dimensions
    assert not CostRollup.objects.filter(dimension="api_key").exists()
    assert CostRollup.objects.filter(dimension="end_user", granularity="day").count() == 2


def test_the_summary_from_rollups_equals_the_summary_from_raw_calls(team_a, team_b, record):
    # given calls of two teams over three days, several models and users
    calls = []
    for index in range(60):
        world = team_a if index % 3 else team_b
        calls.append(
            build_call(
                world,
                created_at=NOW - timedelta(hours=index * 1.3),
                response_model=["gpt-4o", "gpt-4o-mini", "o3-mini"][index % 3],
                end_user=f"user-{index % 4}",
                prompt_name="support" if index % 2 else "",
                input_tokens=100 + index,
                cost_usd=Decimal("0.00012345") * (index + 1),
                cache_result="hit" if index % 5 == 0 else "miss",
                cache_saved_usd=Decimal("0.0021") if index % 5 == 0 else Decimal(0),
                routing_saved_usd=Decimal("0.0003") * (index % 2),
            )
        )
    record(calls)
    caller = caller_for_user(team_a.members["manager"])

    for group_by in ("model", "application", "team", "user", "prompt"):
        for interval in ("hour", "day"):
            query = selectors.summary_query(
                caller=caller,
                group_by=group_by,
                start=NOW - timedelta(days=5),
                end=NOW + timedelta(hours=1),
                interval=interval,
            )
            from_rollups = selectors.cost_summary(query=query)
            from_calls = selectors.cost_summary_from_calls(query=query)
            assert from_rollups == from_calls, (group_by, interval)
            assert from_rollups["series"]
    # and team B's calls are not in team A's summary
    team_query = selectors.summary_query(
        caller=caller, group_by="team", start=NOW - timedelta(days=5), end=NOW + timedelta(hours=1), interval="day"
    )
    assert [group["group"] for group in selectors.cost_summary(query=team_query)["groups"]] == [str(team_a.team.id)]


def test_rollups_bucket_times_of_another_zone_in_utc(team_a, record):
    paris = datetime(2025, 3, 12, 1, 30, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    record([build_call(team_a, created_at=paris)])

    assert rollup(team_a, "day", "team", str(team_a.team.id), datetime(2025, 3, 12, tzinfo=UTC)).calls == 1


def test_a_summary_keeps_the_largest_groups_and_sums_the_rest_as_other(team_a, record):
    calls = [
        build_call(team_a, end_user=f"user-{index:02d}", cost_usd=Decimal(index + 1), created_at=NOW)
        for index in range(25)
    ]
    record(calls)
    caller = caller_for_user(team_a.members["manager"])
    query = selectors.summary_query(
        caller=caller,
        group_by="user",
        start=NOW - timedelta(days=1),
        end=NOW + timedelta(hours=1),
        interval="day",
        top=3,
    )

    from_rollups = selectors.cost_summary(query=query)

    assert [(group["group"], group["cost_usd"]) for group in from_rollups["groups"]] == [
        (selectors.OTHER, "253.00000000"),  # 1 + 2 + ... + 22
        ("user-24", "25.00000000"),
        ("user-23", "24.00000000"),
        ("user-22", "23.00000000"),
    ]
    assert from_rollups["total_cost_usd"] == "325.00000000"
    assert from_rollups == selectors.cost_summary_from_calls(query=query)


def test_summary_top_out_of_range_is_400(team_a, client_for):
    response = client_for(team_a.members["manager"]).get("/api/v1/costs/summary/", {"top": 0})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "top"
