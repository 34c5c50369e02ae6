"""The unscoped reads other apps make of the call table (observability.selectors)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from observability.selectors import (
    call_applications_with_uncached_successes,
    call_cache_counts,
    call_latest_shadow_hits,
    call_latest_uncached_successes,
    call_teams_and_costs,
    call_uncached_successes,
)


def test_cache_counts_and_shadow_hits_are_the_applications_own(make_call, team_a, team_b):
    make_call(team_a, cache_result="hit", cache_saved_usd="0.50000000")
    older_shadow = make_call(team_a, cache_result="shadow_hit")
    newer_shadow = make_call(team_a, cache_result="shadow_hit")
    make_call(team_a, cache_result="miss")
    make_call(team_a)  # not looked up
    make_call(team_b, cache_result="shadow_hit")

    counts = call_cache_counts(team_id=team_a.team.id, application_id=team_a.application.id)
    shadow_hits = call_latest_shadow_hits(team_id=team_a.team.id, application_id=team_a.application.id, limit=5)

    assert counts == {"calls": 4, "hits": 1, "shadow_hits": 2, "saved": Decimal("0.50000000")}
    assert [call.id for call in shadow_hits] == [newer_shadow.id, older_shadow.id]


def test_uncached_successes_leave_out_hits_failures_and_excluded_applications(make_call, team_a, team_b):
    miss = make_call(team_a, cache_result="miss")
    make_call(team_a, cache_result="hit")
    make_call(team_a, status="error")
    other = make_call(team_b)
    since = timezone.now() - timedelta(hours=1)

    applications = call_applications_with_uncached_successes(since=since)
    rows = list(call_uncached_successes(since=since, excluded_application_ids={team_b.application.id}))
    latest = call_latest_uncached_successes(team_id=team_a.team.id, application_id=team_a.application.id, limit=5)

    assert applications == {team_a.application.id, team_b.application.id}
    assert [row[1] for row in rows] == [team_a.application.id]
    assert [call.id for call in latest] == [miss.id]
    assert call_teams_and_costs(call_ids=[miss.id, other.id]) == {
        miss.id: (team_a.team.id, miss.cost_usd),
        other.id: (team_b.team.id, other.cost_usd),
    }
