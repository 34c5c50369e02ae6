from __future__ import annotations

from decimal import Decimal

import pytest

from compliance.models import AuditEvent
from core.testing import assert_hidden, assert_refused
from costs.models import Budget, BudgetPeriod, Notification

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def _create_data(team_id: int, **fields: str) -> dict[str, str]:
    data = {
        "team": str(team_id),
        "name": "Team monthly",
        "scope": "team",
        "scope_value": "",
        "period": "monthly",
        "amount_usd": "25.50",
        "thresholds": "50, 80, 100",
        "action": "block",
        "downgrade_model": "",
        "alert_emails": "finance@example.com, ops@example.com",
        "webhook_url": "",
        "is_enabled": "on",
    }
    data.update(fields)
    return data


def _update_data(budget: Budget, **fields: str) -> dict[str, str]:
    data = {
        "name": budget.name,
        "amount_usd": str(budget.amount_usd),
        "thresholds": ", ".join(str(value) for value in budget.thresholds),
        "action": budget.action,
        "downgrade_model": budget.downgrade_model,
        "alert_emails": ", ".join(budget.alert_emails),
        "webhook_url": budget.webhook_url,
        "is_enabled": "on" if budget.is_enabled else "",
    }
    data.update(fields)
    return {name: value for name, value in data.items() if not (name == "is_enabled" and not value)}


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_managers_and_admins_create_a_budget_and_see_its_webhook_secret_once(team_a, page_client_for, role):
    client = page_client_for(team_a.members[role])

    response = client.post("/costs/budgets/create/", _create_data(team_a.team.id), **HTMX)

    assert response.status_code == 201
    budget = Budget.objects.get()
    assert (budget.team_id, budget.name, budget.scope, budget.period) == (
        team_a.team.id,
        "Team monthly",
        "team",
        "monthly",
    )
    assert budget.amount_usd == Decimal("25.50")
    assert budget.thresholds == [50, 80, 100]
    assert budget.alert_emails == ["finance@example.com", "ops@example.com"]
    assert BudgetPeriod.objects.get(budget=budget).limit_units == 2_550_000_000
    page = response.content.decode()
    assert "<html" not in page
    assert "it will not be shown again" in page
    assert 'id="new-budget-secret"' in page
    assert "no-store" in response["Cache-Control"]
    assert AuditEvent.objects.filter(action="budget.create", target_id=str(budget.id)).count() == 1
    # The secret is shown in that one response only.
    again = client.get("/costs/budgets/").content.decode()
    assert "Team monthly" in again
    assert 'id="new-budget-secret"' not in again


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"amount_usd": "0"}, "amount_usd", "amount_usd must be more than zero (USD per period)."),
        ({"amount_usd": "-5"}, "amount_usd", "amount_usd must be more than zero (USD per period)."),
        ({"scope": "galaxy"}, "scope", "Select a valid choice. galaxy is not one of the available choices."),
        ({"thresholds": "50, 101"}, "thresholds", "&#x27;101&#x27; is not a threshold."),
        ({"thresholds": "0"}, "thresholds", "&#x27;0&#x27; is not a threshold."),
        (
            {"action": "downgrade", "downgrade_model": "gpt-imaginary"},
            "downgrade_model",
            "Unknown downgrade model &#x27;gpt-imaginary&#x27;: it has no price.",
        ),
        (
            {"scope": "application", "scope_value": "999999"},
            "scope_value",
            "scope_value must be the id of an application",
        ),
        ({"alert_emails": "finance"}, "alert_emails", "&#x27;finance&#x27; is not an email address."),
    ],
)
def test_bad_budget_input_answers_400_on_the_field(team_a, page_client_for, fields, field, message):
    client = page_client_for(team_a.members["manager"])

    response = client.post("/costs/budgets/create/", _create_data(team_a.team.id, **fields), **HTMX)

    assert response.status_code == 400
    page = response.content.decode()
    assert f'id="budget_{field}_error"' in page
    assert message in page
    assert Budget.objects.count() == 0


def test_a_viewer_sees_budgets_read_only_and_cannot_create(team_a, make_budget, page_client_for):
    make_budget(team_a.team, name="Team A monthly")
    client = page_client_for(team_a.members["viewer"])

    page = client.get("/costs/budgets/").content.decode()

    assert "Team A monthly" in page
    assert "Create a budget" not in page
    assert "/costs/budgets/create/" not in page
    assert "Delete" not in page
    response = assert_refused(
        client,
        "post",
        "/costs/budgets/create/",
        status=403,
        unchanged=[Budget, BudgetPeriod],
        data=_create_data(team_a.team.id, name="Sneaky"),
    )
    assert "create budgets" in response.content.decode()


def test_creating_a_budget_for_another_team_is_hidden(team_a, team_b, page_client_for):
    client = page_client_for(team_b.members["manager"])

    assert_hidden(
        client, "post", "/costs/budgets/create/", unchanged=[Budget, BudgetPeriod], data=_create_data(team_a.team.id)
    )


def test_a_manager_edits_a_budget(team_a, make_budget, page_client_for):
    budget = make_budget(team_a.team, name="Team A monthly")
    client = page_client_for(team_a.members["manager"])

    response = client.post(
        f"/costs/budgets/{budget.id}/",
        _update_data(
            budget,
            name="Renamed",
            amount_usd="40",
            thresholds="90, 75",
            action="downgrade",
            downgrade_model="gpt-4o-mini",
        ),
        **HTMX,
    )

    assert response.status_code == 200
    assert "Saved the budget Renamed." in response.content.decode()
    budget.refresh_from_db()
    assert (budget.name, budget.amount_usd, budget.thresholds) == ("Renamed", Decimal("40"), [75, 90])
    assert (budget.action, budget.downgrade_model) == ("downgrade", "gpt-4o-mini")
    assert BudgetPeriod.objects.get(budget=budget).limit_units == 4_000_000_000
    event = AuditEvent.objects.get(action="budget.update", target_id=str(budget.id))
    assert sorted(event.after or {}) == ["action", "amount_usd", "downgrade_model", "name", "thresholds"]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"amount_usd": "0"}, "amount_usd", "amount_usd must be more than zero"),
        ({"thresholds": "150"}, "thresholds", "&#x27;150&#x27; is not a threshold."),
        (
            {"action": "downgrade", "downgrade_model": "nope"},
            "downgrade_model",
            "Unknown downgrade model &#x27;nope&#x27;",
        ),
    ],
)
def test_bad_edits_answer_400_and_change_nothing(team_a, make_budget, page_client_for, fields, field, message):
    budget = make_budget(team_a.team)
    client = page_client_for(team_a.members["admin"])

    response = assert_refused(
        client,
        "post",
        f"/costs/budgets/{budget.id}/",
        status=400,
        unchanged=[Budget, BudgetPeriod],
        data=_update_data(budget, **fields),
    )

    assert message in response.content.decode()
    assert f'id="budget{budget.id}_{field}_error"' in response.content.decode()


def test_a_viewer_cannot_edit_or_delete_a_budget(team_a, make_budget, page_client_for):
    budget = make_budget(team_a.team)
    client = page_client_for(team_a.members["viewer"])

    edit = assert_refused(
        client,
        "post",
        f"/costs/budgets/{budget.id}/",
        status=403,
        unchanged=[Budget, BudgetPeriod],
        data=_update_data(budget, amount_usd="1000"),
    )
    delete = assert_refused(
        client, "post", f"/costs/budgets/{budget.id}/delete/", status=403, unchanged=[Budget, BudgetPeriod]
    )

    assert "change budgets" in edit.content.decode()
    assert "delete budgets" in delete.content.decode()


def test_another_teams_budget_cannot_be_edited_or_deleted(team_a, team_b, make_budget, page_client_for):
    budget = make_budget(team_a.team)
    client = page_client_for(team_b.members["admin"])

    assert_hidden(
        client,
        "post",
        f"/costs/budgets/{budget.id}/",
        unchanged=[Budget, BudgetPeriod],
        data=_update_data(budget, amount_usd="1"),
    )
    assert_hidden(client, "post", f"/costs/budgets/{budget.id}/delete/", unchanged=[Budget, BudgetPeriod])


def test_a_manager_deletes_a_budget(team_a, make_budget, page_client_for):
    budget = make_budget(team_a.team, name="Doomed")
    kept = make_budget(team_a.team, name="Kept")
    client = page_client_for(team_a.members["manager"])

    response = client.post(f"/costs/budgets/{budget.id}/delete/", **HTMX)

    assert response.status_code == 200
    assert "Deleted the budget Doomed." in response.content.decode()
    assert list(Budget.objects.values_list("id", flat=True)) == [kept.id]
    assert AuditEvent.objects.filter(action="budget.delete", target_id=str(budget.id)).count() == 1


def test_the_budgets_page_lists_only_the_callers_teams_in_few_queries(
    team_a, team_b, make_budget, page_client_for, django_assert_max_num_queries
):
    for number in range(5):
        make_budget(team_a.team, name=f"A budget {number}")
    make_budget(team_b.team, name="B secret budget")
    client = page_client_for(team_a.members["manager"])
    client.get("/costs/budgets/")  # warm the session and the caller's grants

    with django_assert_max_num_queries(15):
        response = client.get("/costs/budgets/")

    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('<tr id="budget-') - page.count('-actions"') == 5
    assert "B secret budget" not in page
    assert Notification.objects.count() == 0
