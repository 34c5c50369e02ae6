"""What a first-time caller of /v1/chat/completions is told: dropped documents, when to retry."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from django.utils import timezone

from costs.budgets import period_bounds
from costs.services import budget_create, price_set
from gateway.tests.conftest import model_for, provider_for, stored_calls
from observability.types import CallStatus

MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_documents_dropped_above_the_key_clearance_are_counted_in_response_headers(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))  # the test key has internal clearance
    documents = [
        {"id": "faq", "text": "Opening hours are 9 to 5.", "classification": "public"},
        {"id": "m-and-a", "text": "We will acquire Initech in March.", "classification": "confidential"},
        {"id": "payroll", "text": "Salaries rise in May.", "classification": "restricted"},
    ]

    raw = gateway_client.sdk.chat.completions.with_raw_response.create(
        model="fake-model", messages=MESSAGES, extra_body={"documents": documents}
    )

    assert raw.headers["x-controlplane-documents-dropped"] == "2"
    assert raw.headers["x-controlplane-documents-dropped-above-clearance"] == "2"
    assert raw.parse().choices[0].message.content  # the answer itself keeps the OpenAI shape
    [call] = stored_calls(expected=1)
    assert [dropped["id"] for dropped in call.context_report["dropped_above_clearance"]] == ["m-and-a", "payroll"]


def test_a_request_whose_documents_all_reach_the_model_says_none_were_dropped(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))

    raw = gateway_client.sdk.chat.completions.with_raw_response.create(
        model="fake-model",
        messages=MESSAGES,
        extra_body={"documents": [{"id": "faq", "text": "Opening hours are 9 to 5.", "classification": "public"}]},
    )

    assert raw.headers["x-controlplane-documents-dropped"] == "0"
    assert raw.headers["x-controlplane-documents-dropped-above-clearance"] == "0"


def test_a_request_without_documents_carries_no_documents_headers(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))

    raw = gateway_client.sdk.chat.completions.with_raw_response.create(model="fake-model", messages=MESSAGES)

    assert "x-controlplane-documents-dropped" not in raw.headers


def _priced_budget(team, *, period: str) -> None:
    price_set(
        caller=None,
        model="fake-model",
        input_per_million=Decimal("1000"),
        output_per_million=Decimal("2000"),
        effective_from=timezone.now() - timedelta(days=1),
    )
    budget_create(caller=None, team=team, name="cap", scope="team", period=period, amount_usd=Decimal("0.001"))


def _post(gateway_client, **body) -> httpx.Response:
    return httpx.post(
        f"{gateway_client.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway_client.secret}"},
        json={"model": "fake-model", "messages": MESSAGES, **body},
        timeout=30,
    )


def test_a_budget_refusal_says_when_to_retry(gateway_client, fake_upstream, team_a):
    model_for(provider_for(fake_upstream))
    _priced_budget(team_a.team, period="daily")
    before = datetime.now(UTC)
    _, resets_at = period_bounds(period="daily", at=before, time_zone=team_a.team.time_zone)
    assert resets_at is not None

    response = _post(gateway_client, max_tokens=1000)  # needs more than the whole budget
    after = datetime.now(UTC)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "budget_exceeded"
    retry_after = int(response.headers["retry-after"])
    assert (
        math.ceil((resets_at - after).total_seconds()) <= retry_after <= math.ceil((resets_at - before).total_seconds())
    )
    assert retry_after >= 1
    assert fake_upstream.chat_requests() == []
    [call] = stored_calls(expected=1)
    assert call.status == CallStatus.REFUSED
    assert response.headers["x-controlplane-call-id"] == str(call.id)


def test_a_spent_total_budget_refuses_without_retry_after(gateway_client, fake_upstream, team_a):
    model_for(provider_for(fake_upstream))
    _priced_budget(team_a.team, period="total")

    response = _post(gateway_client, max_tokens=1000)  # needs more than the whole budget, which never resets

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "budget_exceeded"
    assert "retry-after" not in response.headers


def test_an_archived_application_key_is_refused_on_its_next_request(gateway_client, fake_upstream, team_a):
    from accounts.caller import caller_for_user
    from accounts.services import application_archive, application_restore
    from accounts.types import Role

    model_for(provider_for(fake_upstream))
    gateway_client.sdk.models.list()  # the key is now cached by the gateway process
    admin = caller_for_user(team_a.members[Role.ADMIN])

    application_archive(caller=admin, application=gateway_client.application)
    refused = _post(gateway_client)
    application_restore(caller=admin, application=gateway_client.application)
    served = _post(gateway_client)

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "application_archived"
    assert served.status_code == 200
