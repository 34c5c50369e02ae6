"""The Calls pages: list with filters, live refresh and cursor pages; one call's trace, redacted."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Membership
from compliance.guardrails.tests.factories import ClassificationRuleFactory
from core.classification import Clearance
from core.testing import snapshot
from observability.models import Call

pytestmark = pytest.mark.django_db

LIST = "/calls/"


def detail(call: Call) -> str:
    return f"/calls/{call.id}/"


def test_list_page_shows_the_teams_calls(team_a, team_b, make_call, page_client_for):
    mine = make_call(team_a, end_user="kim-from-a")
    theirs = make_call(team_b, end_user="bob-from-b")

    response = page_client_for(team_a.members["viewer"]).get(LIST)

    assert response.status_code == 200
    page = response.content.decode()
    assert detail(mine) in page
    assert "kim-from-a" in page
    assert detail(theirs) not in page
    assert "bob-from-b" not in page
    assert 'hx-trigger="every 5s"' not in page  # live refresh only when the user turns it on


def test_list_filters_and_returns_the_results_partial_to_htmx(team_a, make_call, page_client_for):
    wanted = make_call(team_a, status="error", end_user="kim")
    other = make_call(team_a)

    response = page_client_for(team_a.members["viewer"]).get(f"{LIST}?status=error", HTTP_HX_REQUEST="true")

    page = response.content.decode()
    assert response.status_code == 200
    assert "<h1>" not in page  # the partial, not the page
    assert detail(wanted) in page
    assert detail(other) not in page


def test_live_refresh_polls_the_rows_with_the_filters(team_a, make_call, page_client_for):
    call = make_call(team_a, end_user="kim")
    client = page_client_for(team_a.members["viewer"])

    page = client.get(f"{LIST}?end_user=kim&live=1").content.decode()
    rows = client.get(f"{LIST}?end_user=kim&live=1&fragment=rows", HTTP_HX_REQUEST="true")

    assert 'hx-trigger="every 5s"' in page
    assert "fragment=rows" in page
    assert "end_user=kim" in page
    assert rows.status_code == 200
    assert rows.content.decode().lstrip().startswith('<tbody id="call-rows"')
    assert detail(call) in rows.content.decode()


def test_list_pages_older_calls_with_a_cursor(team_a, make_call, page_client_for, monkeypatch):
    from observability import views

    monkeypatch.setattr(views, "PAGE_ROWS", 2)
    calls = [make_call(team_a) for _ in range(3)]
    client = page_client_for(team_a.members["viewer"])

    first = client.get(LIST).content.decode()
    second = client.get(f"{LIST}?before={calls[1].id}").content.decode()

    assert detail(calls[2]) in first
    assert detail(calls[1]) in first
    assert detail(calls[0]) not in first
    assert f"before={calls[1].id}" in first
    assert detail(calls[0]) in second
    assert detail(calls[1]) not in second
    assert "before=" not in second


def test_list_answers_bad_filters_with_400_naming_the_field(team_a, page_client_for):
    response = page_client_for(team_a.members["viewer"]).get(f"{LIST}?from=yesterday")

    assert response.status_code == 400
    assert "<strong>from</strong>" in response.content.decode()


def test_list_query_count_does_not_grow_with_rows(team_a, make_call, page_client_for, django_assert_max_num_queries):
    for _ in range(15):
        make_call(team_a)
    client = page_client_for(team_a.members["viewer"])

    with django_assert_max_num_queries(8):
        response = client.get(LIST)

    assert response.content.decode().count('<tr>\n    <td><a href="/calls/') == 15


def test_anonymous_visitors_are_sent_to_login(make_call, team_a):
    call = make_call(team_a)

    for url in (LIST, detail(call)):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


def test_call_page_shows_the_whole_trace(team_a, make_call, page_client_for):
    call = make_call(
        team_a,
        route_reason="fallback after 500",
        retries=1,
        attempts=[{"model": "gpt-4o", "provider": "openai", "status": 500, "error": "upstream boom", "ms": 10}],
        context_report={"dropped": [{"id": "doc-secret", "reason": "above_clearance"}]},
        guardrail_findings=[{"type": "pii", "entity": "EMAIL_ADDRESS", "score": 0.9, "action": "redact"}],
        time_to_first_token_ms=42.0,
    )

    response = page_client_for(team_a.members["viewer"]).get(detail(call))

    page = response.content.decode()
    assert response.status_code == 200
    for expected in (
        "Hello there",
        "Hi! How can I help?",
        "fallback after 500",
        "upstream boom",
        "doc-secret",
        "EMAIL_ADDRESS",
        "0.00001200",
        "321.5",
        "42.0",
    ):
        assert expected in page, expected


def test_call_page_of_another_team_is_404_and_changes_nothing(team_a, team_b, make_call, page_client_for):
    call = make_call(team_b)
    before = snapshot(Call)

    response = page_client_for(team_a.members["admin"]).get(detail(call))

    assert response.status_code == 404
    assert snapshot(Call) == before


def test_call_page_masks_content_above_the_viewers_clearance(team_a, make_call, page_client_for):
    ClassificationRuleFactory.create(
        team=team_a.team, name="codename", keywords=["Nightingale"], level=Clearance.CONFIDENTIAL
    )
    viewer = team_a.members["viewer"]
    Membership.objects.filter(user=viewer, team=team_a.team).update(clearance=Clearance.INTERNAL)
    call = make_call(
        team_a,
        request_messages=[{"role": "user", "content": "Status of Nightingale?"}],
        response_text="Nightingale ships in May.",
    )

    page = page_client_for(viewer).get(detail(call)).content.decode()

    # The rule matched when the call was stored: the whole call is classified confidential.
    assert "Nightingale" not in page
    assert "Masked: above your clearance. This call is classified confidential" in page
    assert page.count("[masked: above your clearance]") == 2  # the message and the response
    stored = Call.objects.get(id=call.id)
    assert (stored.classification, stored.response_text) == (Clearance.CONFIDENTIAL, "Nightingale ships in May.")


def test_calls_nav_entry_leads_to_the_list(team_a, page_client_for):
    response = page_client_for(team_a.members["viewer"]).get(LIST)

    assert 'href="/calls/" aria-current="page"' in response.content.decode()
