from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from accounts.types import Role
from core.testing import assert_hidden, assert_openai_error, assert_refused
from costs.models import Budget, BudgetPeriod
from costs.tests.conftest import NOW, build_call

pytestmark = pytest.mark.django_db

BASE = "/api/v1/budgets/"


def body(world, **fields):
    values = {
        "team": world.team.id,
        "name": "Team monthly",
        "scope": "team",
        "period": "monthly",
        "amount_usd": "25.00",
    }
    values.update(fields)
    return values


def test_a_manager_creates_a_budget_and_gets_its_webhook_secret_once(team_a, client_for):
    client = client_for(team_a.members["manager"])

    response = client.post(BASE, body(team_a, webhook_url="https://hooks.example.com/x"), format="json")

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["scope"] == "team"
    assert created["amount_usd"] == "25.00000000"
    assert created["thresholds"] == [50, 80, 100]
    assert created["webhook_secret"].startswith("whsec_")
    budget = Budget.objects.get()
    assert created["webhook_secret"] not in budget.webhook_secret_encrypted
    assert "webhook_secret" not in client.get(f"{BASE}{budget.id}/").json()


def test_budgets_are_listed_for_every_member_in_few_queries(
    team_a, make_budget, client_for, django_assert_max_num_queries
):
    for index in range(5):
        make_budget(team_a.team, name=f"b{index}")
    client = client_for(team_a.members["viewer"])

    with django_assert_max_num_queries(8):
        response = client.get(BASE)

    assert response.status_code == 200
    assert sorted(item["name"] for item in response.json()["results"]) == ["b0", "b1", "b2", "b3", "b4"]


def test_a_viewer_cannot_create_change_or_delete_budgets(team_a, make_budget, client_for):
    budget = make_budget(team_a.team)
    viewer = client_for(team_a.members["viewer"])

    assert_refused(viewer, "post", BASE, data=body(team_a), status=403, unchanged=[Budget, BudgetPeriod])
    assert_refused(viewer, "patch", f"{BASE}{budget.id}/", data={"amount_usd": "1"}, status=403, unchanged=[Budget])
    assert_refused(viewer, "delete", f"{BASE}{budget.id}/", status=403, unchanged=[Budget, BudgetPeriod])


def test_another_teams_budget_is_hidden(team_a, team_b, make_budget, client_for):
    budget = make_budget(team_a.team)
    outsider = client_for(team_b.members["admin"])

    for method, url, data in (
        ("get", f"{BASE}{budget.id}/", None),
        ("get", f"{BASE}{budget.id}/status/", None),
        ("patch", f"{BASE}{budget.id}/", {"amount_usd": "1"}),
        ("delete", f"{BASE}{budget.id}/", None),
        ("post", BASE, body(team_a)),
    ):
        assert_hidden(outsider, method, url, data=data, unchanged=[Budget, BudgetPeriod])
    assert outsider.get(BASE).json()["results"] == []


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"amount_usd": "0"}, "amount_usd"),
        ({"amount_usd": "-5"}, "amount_usd"),
        ({"scope": "galaxy"}, "scope"),
        ({"thresholds": [0, 50]}, "thresholds.0"),
        ({"thresholds": [50, 101]}, "thresholds.1"),
        ({"action": "downgrade", "downgrade_model": "gpt-9000"}, "downgrade_model"),
        ({"action": "downgrade"}, "downgrade_model"),
        ({"scope": "application", "scope_value": "999999"}, "scope_value"),
        ({"scope": "metadata", "scope_value": "no-equals"}, "scope_value"),
        ({"period": "hourly"}, "period"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_budget_input_is_refused_naming_the_field(team_a, client_for, fields, param):
    client = client_for(team_a.members["manager"])

    response = assert_refused(client, "post", BASE, data=body(team_a, **fields), status=400, unchanged=[Budget])

    assert response.json()["error"]["param"] == param


def test_a_manager_changes_and_deletes_a_budget(team_a, make_budget, client_for):
    budget = make_budget(team_a.team)
    client = client_for(team_a.members["manager"])

    changed = client.patch(f"{BASE}{budget.id}/", {"amount_usd": "40", "thresholds": [90]}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["amount_usd"], changed.json()["thresholds"]) == ("40.00000000", [90])
    assert BudgetPeriod.objects.get(budget=budget).limit_usd == Decimal("40")
    refused = client.patch(f"{BASE}{budget.id}/", {"period": "daily"}, format="json")
    assert_openai_error(refused, 400, param="period")

    assert client.delete(f"{BASE}{budget.id}/").status_code == 204
    assert not Budget.objects.exists()


def test_budget_status_reports_limit_spent_reserved_remaining_and_reset(team_a, make_budget, client_for):
    from django.utils import timezone

    from costs.services import budget_reserve, budget_settle

    budget = make_budget(team_a.team, period="daily", amount_usd=Decimal("10"))
    now = timezone.now()
    kwargs = {
        "team_id": team_a.team.id,
        "application_id": team_a.application.id,
        "api_key_id": None,
        "end_user": "",
        "model": "gpt-4o",
        "metadata": {},
        "at": now,
    }
    budget_settle(reservation=budget_reserve(amount=Decimal("3"), **kwargs), actual=Decimal("2.5"))
    budget_reserve(amount=Decimal("1"), **kwargs)

    status = client_for(team_a.members["viewer"]).get(f"{BASE}{budget.id}/status/").json()

    assert (status["limit"], status["spent"], status["reserved"], status["remaining"]) == (
        "10.00000000",
        "2.50000000",
        "1.00000000",
        "6.50000000",
    )
    assert status["resets_at"] == (
        now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    ).isoformat().replace("+00:00", "Z")


def test_the_cost_summary_groups_rollups_by_model(team_a, team_b, record, client_for):
    record([build_call(team_a, response_model="gpt-4o", cost_usd=Decimal("0.5")) for _ in range(3)])
    record([build_call(team_a, response_model="gpt-4o-mini", cost_usd=Decimal("0.1"))])
    record([build_call(team_b, response_model="gpt-4o", cost_usd=Decimal("9"))])
    client = client_for(team_a.members["viewer"])
    window = {"from": (NOW - timedelta(days=1)).isoformat(), "to": (NOW + timedelta(days=1)).isoformat()}

    response = client.get("/api/v1/costs/summary/", {"group_by": "model", "interval": "day", **window})

    assert response.status_code == 200, response.content
    summary = response.json()
    assert summary["total_cost_usd"] == "1.60000000"
    assert [(group["group"], group["cost_usd"], group["calls"]) for group in summary["groups"]] == [
        ("gpt-4o", "1.50000000", 3),
        ("gpt-4o-mini", "0.10000000", 1),
    ]
    assert [row["bucket"] for row in summary["series"]] == ["2025-03-12T00:00:00+00:00"] * 2


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"group_by": "colour"}, "group_by"),
        ({"interval": "minute"}, "interval"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, "from"),
        ({"limit": "3"}, "limit"),
        ({"to": "0001-01-01T00:00:00Z"}, "to"),  # the default from (30 days earlier) would overflow
    ],
)
def test_bad_summary_queries_are_refused_naming_the_parameter(team_a, client_for, query, param):
    response = client_for(team_a.members["viewer"]).get("/api/v1/costs/summary/", query)

    assert_openai_error(response, 400, param=param)


def test_another_teams_summary_is_hidden(team_a, team_b, client_for):
    response = client_for(team_b.members["admin"]).get("/api/v1/costs/summary/", {"team": team_a.team.id})

    assert_openai_error(response, 404)


def test_an_application_key_cannot_read_costs(team_a, key_client_for):
    response = key_client_for(team_a.application).get("/api/v1/costs/summary/")

    assert_openai_error(response, 403)


def test_budget_changes_go_on_the_audit_trail(team_a, client_for):
    from compliance.models import AuditEvent

    client = client_for(team_a.members[Role.MANAGER])
    created = client.post(BASE, body(team_a), format="json")
    assert created.status_code == 201, created.content
    budget_id = Budget.objects.get().id
    client.patch(f"{BASE}{budget_id}/", {"amount_usd": "30"}, format="json")

    events = list(AuditEvent.objects.filter(target_type="budget", target_id=str(budget_id)).order_by("id"))
    assert [event.action for event in events] == ["budget.create", "budget.update"]
    assert events[1].team_id == team_a.team.id
    assert events[1].after == {"amount_usd": "30.00000000"}
    assert events[1].actor_user_id == team_a.members[Role.MANAGER].id
