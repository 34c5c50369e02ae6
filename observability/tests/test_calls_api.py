"""GET /api/v1/calls/ (scoping, filters, cursor pages), GET /api/v1/calls/{id}/ (trace, redaction)
and POST /api/v1/calls/ (ingestion)."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.tests.factories import ApplicationFactory
from accounts.types import Role
from compliance.guardrails import services as guardrail_services
from compliance.guardrails.tests.factories import ClassificationRuleFactory
from core.classification import Clearance
from core.testing import assert_hidden, assert_openai_error, assert_refused
from costs.services import price_set
from observability.models import Call

pytestmark = pytest.mark.django_db

URL = "/api/v1/calls/"


def detail_url(call: Call | str) -> str:
    return f"{URL}{call.id if isinstance(call, Call) else call}/"


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# List ---------------------------------------------------------------------------------------


def test_list_shows_the_callers_team_calls_newest_first_without_bodies(team_a, team_b, make_call, client_for):
    older = make_call(team_a)
    newer = make_call(team_a, end_user="kim")
    make_call(team_b)

    response = client_for(team_a.members["viewer"]).get(URL)

    assert ids(response) == [str(newer.id), str(older.id)]
    row = response.json()["results"][0]
    assert "request_messages" not in row
    assert "response_text" not in row
    assert (row["end_user"], row["request_model"], row["input_tokens"], row["cost_usd"]) == (
        "kim",
        "gpt-4o-mini",
        12,
        "0.00001200",
    )
    assert (row["team"], row["application"], row["source"]) == (team_a.team.id, team_a.application.id, "gateway")


def test_application_key_sees_only_its_application_and_other_keys_their_team(team_a, make_call, key_client_for):
    other_application = ApplicationFactory.create(team=team_a.team)
    own = make_call(team_a)
    sibling = make_call(team_a, application=other_application.id)

    application_key = key_client_for(team_a.application, role=Role.APPLICATION)
    viewer_key = key_client_for(team_a.application, role=Role.VIEWER)

    assert ids(application_key.get(URL)) == [str(own.id)]
    assert ids(viewer_key.get(URL)) == [str(sibling.id), str(own.id)]
    assert_hidden(application_key, "get", detail_url(sibling), unchanged=[Call])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("model=gpt-4o", ["served"]),  # the served model matches as well as the requested one
        ("model=gpt-4o-mini", ["plain", "failed", "tagged", "old"]),
        ("status=error", ["failed"]),
        ("end_user=kim", ["tagged"]),
        ("prompt=support", ["tagged"]),
        ("cache_result=hit", ["served"]),
        ("metadata.env=prod", ["tagged", "old"]),
        ("metadata.env=prod&metadata.tier=gold", ["tagged"]),
        ("from=2024-06-01T00:00:00Z", ["plain", "failed", "served", "tagged"]),
        ("to=2024-06-01", ["old"]),
        ("from=2024-01-01T00:00:00%2B00:00&to=2024-02-01T00:00:00%2B00:00", ["old"]),
    ],
)
def test_list_filters(team_a, make_call, client_for, query, expected):
    calls = {
        "old": make_call(team_a, created_at="2024-01-15T10:00:00+00:00", metadata={"env": "prod"}),
        "tagged": make_call(team_a, end_user="kim", prompt_name="support", metadata={"env": "prod", "tier": "gold"}),
        "served": make_call(team_a, request_model="auto", response_model="gpt-4o", cache_result="hit"),
        "failed": make_call(team_a, request_model="gpt-4o-mini", response_model="", status="error"),
        "plain": make_call(team_a),
    }
    names = {str(call.id): name for name, call in calls.items()}

    response = client_for(team_a.members["viewer"]).get(f"{URL}?{query}")

    assert [names[call_id] for call_id in ids(response)] == expected


def test_list_filter_by_application(team_a, make_call, client_for):
    other_application = ApplicationFactory.create(team=team_a.team)
    make_call(team_a)
    wanted = make_call(team_a, application=other_application.id)

    response = client_for(team_a.members["viewer"]).get(f"{URL}?application={other_application.id}")

    assert ids(response) == [str(wanted.id)]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("from=yesterday", "from"),
        ("to=2024-13-45", "to"),
        ("from=2024-03-01&to=2024-02-01", "from"),
        ("status=exploded", "status"),
        ("cache_result=maybe", "cache_result"),
        ("application=abc", "application"),
        ("application=%C2%B2", "application"),
        ("from=0001-01-01T00:00:00%2B01:00", "from"),  # "²": str.isdigit() says yes, int() refuses
        ("metadata.a%20b=1", "metadata.a b"),
    ],
)
def test_list_rejects_bad_filters_naming_the_field(team_a, client_for, query, param):
    response = client_for(team_a.members["viewer"]).get(f"{URL}?{query}")

    assert_openai_error(response, 400, param=param)


def test_list_pages_with_a_cursor(team_a, make_call, client_for):
    calls = [make_call(team_a) for _ in range(5)]
    client = client_for(team_a.members["viewer"])

    first = client.get(f"{URL}?limit=2").json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()

    seen = [row["id"] for page in (first, second, third) for row in page["results"]]
    assert seen == [str(call.id) for call in reversed(calls)]
    assert third["next"] is None


def test_list_query_count_does_not_grow_with_rows(team_a, make_call, client_for, django_assert_max_num_queries):
    for _ in range(12):
        make_call(team_a, metadata={"env": "prod"})
    client = client_for(team_a.members["viewer"])

    with django_assert_max_num_queries(6):
        response = client.get(f"{URL}?metadata.env=prod&model=gpt-4o-mini")

    assert len(ids(response)) == 12


def test_list_needs_authentication(client):
    assert_openai_error(client.get(URL), 401)


# Detail -------------------------------------------------------------------------------------


def test_detail_returns_the_whole_trace(team_a, make_call, client_for):
    call = make_call(
        team_a,
        route_reason="fallback: gpt-4o failed",
        retries=1,
        attempts=[
            {"model": "gpt-4o", "provider": "openai", "status": 500, "error": "boom", "ms": 12.5},
            {"model": "gpt-4o-mini", "provider": "openai", "status": 200, "error": "", "ms": 300.0},
        ],
        context_report={"included": [{"id": "doc-1"}], "dropped": [{"id": "doc-2", "reason": "above_clearance"}]},
        guardrail_findings=[{"type": "pii", "entity": "EMAIL_ADDRESS", "score": 0.9, "action": "redact"}],
        metadata={"env": "prod"},
        time_to_first_token_ms=80.0,
        gateway_overhead_ms=1.5,
        finish_reason="stop",
    )

    response = client_for(team_a.members["viewer"]).get(detail_url(call))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["request_messages"] == [{"role": "user", "content": "Hello there"}]
    assert body["response_text"] == "Hi! How can I help?"
    assert (body["input_tokens"], body["output_tokens"], body["cost_usd"]) == (12, 7, "0.00001200")
    assert (body["latency_ms"], body["time_to_first_token_ms"], body["gateway_overhead_ms"]) == (321.5, 80.0, 1.5)
    assert (body["route_reason"], body["retries"], len(body["attempts"])) == ("fallback: gpt-4o failed", 1, 2)
    assert body["context_report"]["dropped"] == [{"id": "doc-2", "reason": "above_clearance"}]
    assert body["guardrail_findings"][0]["entity"] == "EMAIL_ADDRESS"
    assert (body["metadata"], body["finish_reason"], body["viewer_clearance"]) == (
        {"env": "prod"},
        "stop",
        "confidential",
    )


def test_detail_of_another_teams_call_is_hidden(team_a, team_b, make_call, client_for):
    call = make_call(team_b)

    assert_hidden(client_for(team_a.members["admin"]), "get", detail_url(call), unchanged=[Call])


def test_detail_of_a_malformed_id_is_a_400_naming_it(team_a, client_for):
    response = client_for(team_a.members["viewer"]).get(detail_url("not-a-uuid"))

    assert_openai_error(response, 400, param="id")


def test_detail_redacts_spans_a_rule_added_after_the_call_classifies_above_the_viewers_clearance(
    team_a, make_call, client_for, key_client_for
):
    call = make_call(
        team_a,
        request_messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Status of Nightingale?"}]},
        ],
        response_text="Nightingale ships in May.",
    )
    ClassificationRuleFactory.create(
        team=team_a.team, name="codename", keywords=["Nightingale"], level=Clearance.CONFIDENTIAL
    )
    guardrail_services.reset_caches()  # the rule was written past the service that tells every process
    internal_key = key_client_for(team_a.application, role=Role.APPLICATION, clearance=Clearance.INTERNAL)

    internal = internal_key.get(detail_url(call)).json()
    confidential = client_for(team_a.members["viewer"]).get(detail_url(call)).json()

    assert internal["request_messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Status of [REDACTED:confidential]?"}]},
    ]
    assert internal["response_text"] == "[REDACTED:confidential] ships in May."
    assert internal["viewer_clearance"] == "internal"
    assert confidential["response_text"] == "Nightingale ships in May."
    stored = Call.objects.get(id=call.id)
    assert stored.response_text == "Nightingale ships in May."
    assert stored.request_messages[1]["content"][0]["text"] == "Status of Nightingale?"


# Ingestion ----------------------------------------------------------------------------------


def record(client_id: str, **fields):
    return {
        "id": client_id,
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Hi"}],
        "response": "Hello",
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "cached_tokens": 0},
        "latency_ms": 250,
        **fields,
    }


def test_key_ingests_a_batch_with_cost_from_the_models_price(team_a, key_client_for):
    price_set(
        caller=None,
        model="gpt-4o-mini",
        input_per_million=Decimal("0.15"),
        output_per_million=Decimal("0.60"),
        effective_from=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
    )
    client = key_client_for(team_a.application)
    batch = {
        "calls": [
            record("c-1", end_user="kim", metadata={"env": "prod"}),
            record("c-2", cost_usd="0.5", status="error", error_message="upstream failed"),
        ]
    }

    response = client.post(URL, batch, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert [row["id"] for row in body["created"]] == ["c-1", "c-2"]
    assert body["existing"] == []
    first = Call.objects.get(client_call_id="c-1")
    second = Call.objects.get(client_call_id="c-2")
    assert str(first.id) == body["created"][0]["call_id"]
    assert (first.source, first.application_id, first.team_id, first.api_key_id is not None) == (
        "ingested",
        team_a.application.id,
        team_a.team.id,
        True,
    )
    assert first.cost_usd == Decimal("0.00045000")  # 1000 x 0.15 + 500 x 0.60 per million
    assert (first.input_tokens, first.output_tokens, first.end_user, first.metadata) == (
        1000,
        500,
        "kim",
        {"env": "prod"},
    )
    assert (first.request_messages, first.response_text, first.response_model) == (
        [{"role": "user", "content": "Hi"}],
        "Hello",
        "gpt-4o-mini",
    )
    assert (second.cost_usd, second.status, second.error_message) == (Decimal("0.5"), "error", "upstream failed")


def test_ingestion_is_idempotent_by_client_id(team_a, key_client_for):
    client = key_client_for(team_a.application)
    first = client.post(URL, {"calls": [record("c-1"), record("c-2")]}, format="json").json()

    response = client.post(URL, {"calls": [record("c-2"), record("c-1"), record("c-3")]}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert [row["id"] for row in body["created"]] == ["c-3"]
    assert sorted((row["id"], row["call_id"]) for row in body["existing"]) == sorted(
        (row["id"], row["call_id"]) for row in first["created"]
    )
    assert Call.objects.count() == 3
    again = client.post(URL, {"calls": [record("c-3")]}, format="json")
    assert again.status_code == 200
    assert again.json()["created"] == []


def test_created_at_is_kept_and_orders_the_call(team_a, make_call, key_client_for):
    newer = make_call(team_a)
    client = key_client_for(team_a.application)

    client.post(URL, {"calls": [record("old", created_at="2024-05-01T12:00:00Z")]}, format="json")

    stored = Call.objects.get(client_call_id="old")
    assert stored.created_at == datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC)
    assert list(Call.objects.order_by("-id").values_list("id", flat=True)) == [newer.id, stored.id]


@pytest.mark.parametrize(
    ("bad_record", "param"),
    [
        (record("x", usage={"prompt_tokens": -1}), "calls[3].usage.prompt_tokens"),
        (record("x", usage={"prompt_tokens": 1, "cached_tokens": 5}), "calls[3].usage.cached_tokens"),
        (record("x", status="exploded"), "calls[3].status"),
        (record("x", colour="red"), "calls[3].colour"),
        ({k: v for k, v in record("x").items() if k != "id"}, "calls[3].id"),
        ({k: v for k, v in record("x").items() if k != "model"}, "calls[3].model"),
        (record("x", messages=[{"content": "no role"}]), "calls[3].messages[0]"),
        (record("x", created_at="2999-01-01T00:00:00Z"), "calls[3].created_at"),
        (record("x", created_at="last week"), "calls[3].created_at"),
        (record("c-0"), "calls[3].id"),  # the same client id twice in one batch
    ],
)
def test_one_invalid_record_rejects_the_whole_batch(team_a, key_client_for, bad_record, param):
    client = key_client_for(team_a.application)
    batch = {"calls": [record("c-0"), record("c-1"), record("c-2"), bad_record]}

    response = assert_refused(client, "post", URL, data=batch, status=400, unchanged=[Call])

    assert_openai_error(response, 400, param=param)


def test_a_batch_over_the_limit_is_refused_naming_it(team_a, key_client_for):
    client = key_client_for(team_a.application)
    batch = {"calls": [record(f"c-{index}") for index in range(1001)]}

    response = assert_refused(client, "post", URL, data=batch, status=400, unchanged=[Call])

    error = assert_openai_error(response, 400, param="calls")
    assert "1000" in error["message"]


@pytest.mark.parametrize(("payload", "param"), [({"calls": []}, "calls"), ({"calls": "x"}, "calls"), ({}, "calls")])
def test_an_empty_or_malformed_batch_is_refused(team_a, key_client_for, payload, param):
    response = assert_refused(
        key_client_for(team_a.application), "post", URL, data=payload, status=400, unchanged=[Call]
    )

    assert_openai_error(response, 400, param=param)


def test_a_user_names_the_application_and_needs_invoke_rights(team_a, client_for):
    engineer = client_for(team_a.members["prompt_engineer"])
    batch = {"application": team_a.application.id, "calls": [record("u-1")]}

    missing = assert_refused(engineer, "post", URL, data={"calls": [record("u-1")]}, status=400, unchanged=[Call])
    assert_refused(client_for(team_a.members["viewer"]), "post", URL, data=batch, status=403, unchanged=[Call])
    response = engineer.post(URL, batch, format="json")

    assert_openai_error(missing, 400, param="application")
    assert response.status_code == 201, response.content
    stored = Call.objects.get(client_call_id="u-1")
    assert (stored.application_id, stored.api_key_id) == (team_a.application.id, None)


def test_ingesting_into_another_teams_application_is_hidden(team_a, team_b, client_for, key_client_for):
    batch = {"application": team_b.application.id, "calls": [record("x-1")]}

    assert_hidden(client_for(team_a.members["admin"]), "post", URL, data=batch, unchanged=[Call])
    response = assert_refused(key_client_for(team_a.application), "post", URL, data=batch, status=400, unchanged=[Call])
    assert_openai_error(response, 400, param="application")


def test_a_viewer_key_cannot_ingest(team_a, key_client_for):
    client = key_client_for(team_a.application, role=Role.VIEWER)

    assert_refused(client, "post", URL, data={"calls": [record("v-1")]}, status=403, unchanged=[Call])


def test_ingested_calls_show_in_the_list_with_their_client_id(team_a, key_client_for):
    client = key_client_for(team_a.application)
    client.post(URL, {"calls": [record("c-1", created_at=timezone.now().isoformat())]}, format="json")

    rows = client.get(URL).json()["results"]

    assert [(row["client_call_id"], row["source"]) for row in rows] == [("c-1", "ingested")]
