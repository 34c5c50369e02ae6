from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from costs.tests.conftest import build_call

pytestmark = pytest.mark.django_db


def test_the_costs_page_shows_charts_tables_and_budgets_from_rollups(
    team_a, team_b, make_budget, record, page_client_for
):
    now = timezone.now()
    record([build_call(team_a, created_at=now, response_model="gpt-4o", end_user="alice", cost_usd=Decimal("1.25"))])
    record([build_call(team_b, created_at=now, response_model="o3-mini", end_user="mallory", cost_usd=Decimal("7"))])
    make_budget(team_a.team, name="Team A monthly")
    client = page_client_for(team_a.members["viewer"])

    response = client.get("/costs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "vendor/plotly.min.js" in page
    assert "<strong>$1.25000000</strong>" in page
    assert "Team A monthly" in page
    assert "alice" in page
    assert "mallory" not in page
    assert "o3-mini" not in page
    for chart in ("spend", "budgets", "top_models", "top_users", "top_prompts", "savings"):
        assert f'id="chart-{chart}"' in page


def test_htmx_filters_return_only_the_dashboard(team_a, page_client_for):
    client = page_client_for(team_a.members["viewer"])

    response = client.get("/costs/", {"group_by": "application", "interval": "hour"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert 'id="chart-spend"' in response.content.decode()


def test_bad_filters_answer_400_saying_what_to_fix(team_a, page_client_for):
    client = page_client_for(team_a.members["viewer"])

    response = client.get("/costs/", {"start": "2025-03-02", "end": "2025-03-01"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 400
    assert "From must be on or before To." in response.content.decode()


def test_a_date_at_the_end_of_the_calendar_is_a_400_not_an_overflow(team_a, page_client_for):
    client = page_client_for(team_a.members["viewer"])

    response = client.get("/costs/", {"end": "9999-12-31"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 400
    assert "must be between the years" in response.content.decode()


def test_another_teams_costs_are_hidden(team_a, team_b, page_client_for):
    response = page_client_for(team_b.members["viewer"]).get("/costs/", {"team": team_a.team.id})

    assert response.status_code == 400  # not one of the caller's teams: not offered, nothing shown
    assert "Team A" not in response.content.decode()


def test_the_costs_page_needs_a_login(client):
    response = client.get("/costs/")

    assert response.status_code == 302
