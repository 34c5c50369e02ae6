"""The OpenAI-compatible endpoint, driven by the official SDK against a live server, with
fake providers speaking the OpenAI protocol over real HTTP."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from gateway.models import RoutingPolicy
from gateway.tests.conftest import model_for, provider_for, stored_calls
from gateway.tests.fake_upstream import fail, hang, reply
from observability.models import Call
from observability.types import CallStatus


def error_body(error: openai.APIStatusError) -> dict:
    """The `error` object of an OpenAI-shaped error response (the SDK unwraps it)."""
    assert isinstance(error.body, dict), error.body
    return error.body


MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]


def test_completion_passes_through_and_is_recorded(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))
    fake_upstream.enqueue(reply("Hello there friend", prompt_tokens=7, completion_tokens=3))

    raw = gateway_client.sdk.chat.completions.with_raw_response.create(
        model="fake-model",
        messages=MESSAGES,
        temperature=0.2,
        user="end-user-1",
        extra_body={"metadata": {"feature": "faq"}},
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == "Hello there friend"
    assert completion.usage.prompt_tokens == 7
    upstream_body = fake_upstream.chat_requests()[-1].body
    assert upstream_body["model"] == "upstream-model"
    assert upstream_body["temperature"] == 0.2
    assert "metadata" not in upstream_body
    assert fake_upstream.chat_requests()[-1].authorization == "Bearer upstream-secret"
    call_id = raw.headers["x-controlplane-call-id"]
    assert raw.headers["x-controlplane-route"].startswith("fake-model (requested model")
    assert float(raw.headers["x-controlplane-overhead-ms"]) >= 0
    [call] = stored_calls(expected=1)
    assert str(call.id) == call_id
    assert (call.status, call.http_status, call.request_model, call.response_model, call.provider) == (
        CallStatus.SUCCESS,
        200,
        "fake-model",
        "fake-model",
        "fake",
    )
    assert (call.input_tokens, call.output_tokens) == (7, 3)
    assert call.response_text == "Hello there friend"
    assert call.end_user == "end-user-1"
    assert call.metadata == {"feature": "faq"}
    assert call.request_messages == MESSAGES
    assert call.application_id == gateway_client.application.id
    # The header and the record carry the same overhead: part of the whole latency, not all of it.
    assert float(raw.headers["x-controlplane-overhead-ms"]) == pytest.approx(call.gateway_overhead_ms, abs=0.01)
    assert call.latency_ms is not None
    assert call.gateway_overhead_ms is not None
    assert 0 < call.gateway_overhead_ms < call.latency_ms


def test_streaming_with_usage_relays_chunks_and_records_the_whole_answer(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))
    fake_upstream.enqueue(reply("one two three four", prompt_tokens=5))

    chunks = list(
        gateway_client.sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "one two three four"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    [call] = stored_calls(expected=1)
    assert call.is_stream
    assert call.response_text == "one two three four"
    assert (call.input_tokens, call.output_tokens) == (5, 4)
    assert call.time_to_first_token_ms is not None
    assert call.finish_reason == "stop"


def test_streaming_without_include_usage_hides_the_usage_chunk_but_records_usage(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))
    fake_upstream.enqueue(reply("a b", prompt_tokens=2))

    chunks = list(gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True))

    assert all(chunk.usage is None for chunk in chunks)
    assert fake_upstream.chat_requests()[-1].body["stream_options"] == {"include_usage": True}
    [call] = stored_calls(expected=1)
    assert (call.input_tokens, call.output_tokens) == (2, 2)


def test_streamed_calls_reuse_the_provider_connection(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))
    fake_upstream.default = reply("one two three", prompt_tokens=3)

    for _ in range(3):
        chunks = list(gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True))
        assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == "one two three"

    # Read to the end of its body, each stream hands its connection back to the pool.
    assert len({request.client_port for request in fake_upstream.chat_requests()}) == 1


def test_429_is_retried_honouring_retry_after(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))
    fake_upstream.enqueue(fail(429, message="slow down", retry_after=0), reply("finally"))

    completion = gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES)

    assert completion.choices[0].message.content == "finally"
    [call] = stored_calls(expected=1)
    assert call.retries == 1
    assert [attempt["status"] for attempt in call.attempts] == [429, 200]


def test_failing_model_falls_back_along_the_chain(gateway_client, fake_upstream, second_upstream):
    primary = provider_for(fake_upstream, max_retries=1)
    backup = provider_for(second_upstream, name="backup")
    model_for(backup, name="backup-model", provider_model="backup-model")
    model_for(primary, fallbacks=["backup-model"])
    fake_upstream.enqueue(fail(500), fail(503))
    second_upstream.enqueue(reply("from the backup"))

    raw = gateway_client.sdk.chat.completions.with_raw_response.create(model="fake-model", messages=MESSAGES)

    assert raw.parse().choices[0].message.content == "from the backup"
    assert "fallback" in raw.headers["x-controlplane-route"]
    [call] = stored_calls(expected=1)
    assert (call.request_model, call.response_model, call.provider) == ("fake-model", "backup-model", "backup")
    assert [(attempt["model"], attempt["status"]) for attempt in call.attempts] == [
        ("fake-model", 500),
        ("fake-model", 503),
        ("backup-model", 200),
    ]


def test_when_everything_fails_the_client_gets_a_502_naming_the_provider_and_its_message(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream, max_retries=1))
    fake_upstream.enqueue(fail(503, message="overloaded"), fail(503, message="still overloaded"))

    with pytest.raises(openai.APIStatusError) as raised:
        gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES)

    assert raised.value.status_code == 502
    message = "Provider 'fake' failed with HTTP 503: still overloaded"
    assert error_body(raised.value) == {
        "message": message,
        "type": "api_error",
        "param": None,
        "code": "upstream_error",
    }
    [call] = stored_calls(expected=1)
    assert call.status == CallStatus.ERROR
    assert call.http_status == 502
    assert call.error_message == message
    assert [attempt["status"] for attempt in call.attempts] == [503, 503]


def test_a_400_from_the_provider_is_returned_without_retry(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))
    fake_upstream.enqueue(fail(400, message="context too long", code="context_length_exceeded"))

    with pytest.raises(openai.BadRequestError) as raised:
        gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES)

    assert error_body(raised.value)["code"] == "context_length_exceeded"
    assert len(fake_upstream.chat_requests()) == 1


def test_a_provider_that_hangs_times_out_and_is_reported_as_504(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream, read_timeout_seconds=0.3, max_retries=1))
    fake_upstream.enqueue(hang(5), hang(5))

    with pytest.raises(openai.APIStatusError) as raised:
        gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES)

    assert raised.value.status_code == 504
    assert error_body(raised.value)["code"] == "upstream_timeout"
    [call] = stored_calls(expected=1)
    assert len(call.attempts) == 2
    assert all(attempt["error"].startswith("timeout") for attempt in call.attempts)


def test_circuit_breaker_opens_skips_the_provider_then_probes_and_closes(
    gateway_client, fake_upstream, second_upstream, settings
):
    settings.GATEWAY_BREAKER_THRESHOLD = 2
    settings.GATEWAY_BREAKER_COOLDOWN_SECONDS = 0.5
    primary = provider_for(fake_upstream, max_retries=0)
    model_for(provider_for(second_upstream, name="backup"), name="backup-model", provider_model="backup-model")
    model_for(primary, fallbacks=["backup-model"])
    fake_upstream.enqueue(fail(500), fail(500))

    for _ in range(2):  # two failures open the breaker; the backup answers
        gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
    requests_before = len(fake_upstream.chat_requests())
    gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
    skipped = stored_calls(expected=3)[-1]
    time.sleep(0.6)  # wait out the cooldown so that the next call probes (not a timing assertion)
    probe = gateway_client.sdk.chat.completions.with_raw_response.create(model="fake-model", messages=MESSAGES)

    assert len(fake_upstream.chat_requests()) == requests_before + 1  # skipped while open, then one probe
    assert skipped.attempts[0]["error"] == "circuit open"
    assert skipped.response_model == "backup-model"
    assert "fallback" not in probe.headers["x-controlplane-route"]
    assert stored_calls(expected=4)[-1].response_model == "fake-model"


def test_client_disconnect_mid_stream_is_recorded_with_the_partial_answer(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))
    words = " ".join(f"w{index}" for index in range(40))
    fake_upstream.enqueue(reply(words, chunk_delay_seconds=0.05))

    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            f"{gateway_client.base_url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {gateway_client.secret}"},
            json={"model": "fake-model", "messages": MESSAGES, "stream": True},
        ) as response,
    ):
        received = 0
        for line in response.iter_lines():
            if line.startswith("data:"):
                received += 1
            if received == 3:
                break  # leave: the client closes the connection

    [call] = stored_calls(expected=1)
    assert call.status == CallStatus.CANCELLED
    assert call.response_text
    assert call.response_text != words
    assert words.startswith(call.response_text)


def test_unknown_model_is_404_model_not_found_and_nothing_is_recorded(gateway_client, fake_upstream):
    with pytest.raises(openai.NotFoundError) as raised:
        gateway_client.sdk.chat.completions.create(model="no-such-model", messages=MESSAGES)

    assert error_body(raised.value)["code"] == "model_not_found"
    assert stored_calls() == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "fake-model", "messages": []}, "messages"),
        ({"model": "fake-model", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "fake-model", "messages": MESSAGES, "temperature": 3}, "temperature"),
        ({"model": "fake-model", "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": "fake-model", "messages": MESSAGES, "frobnicate": True}, "frobnicate"),
        ({"messages": MESSAGES}, "model"),
    ],
)
def test_invalid_requests_are_400_naming_the_field(gateway_client, fake_upstream, body, param):
    model_for(provider_for(fake_upstream))
    response = httpx.post(
        f"{gateway_client.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway_client.secret}"},
        json=body,
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert fake_upstream.chat_requests() == []
    assert stored_calls() == []


def test_malformed_json_oversized_body_and_bad_auth(gateway_client, fake_upstream, settings):
    settings.GATEWAY_MAX_BODY_BYTES = 1000
    url = f"{gateway_client.base_url}/v1/chat/completions"
    auth = {"Authorization": f"Bearer {gateway_client.secret}"}

    malformed = httpx.post(url, headers={**auth, "content-type": "application/json"}, content=b"{nope")
    oversized = httpx.post(
        url, headers=auth, json={"model": "m", "messages": [{"role": "user", "content": "x" * 2000}]}
    )
    anonymous = httpx.post(url, json={"model": "m", "messages": MESSAGES})
    wrong_key = httpx.post(url, headers={"Authorization": "Bearer cp_000000000000_notarealkeynotarealkey"}, json={})

    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "invalid_json")
    assert (oversized.status_code, oversized.json()["error"]["code"]) == (413, "request_too_large")
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "missing_api_key")
    assert (wrong_key.status_code, wrong_key.json()["error"]["type"]) == (401, "authentication_error")
    assert stored_calls() == []


def test_models_lists_shared_and_own_models_but_not_other_teams(gateway_client, fake_upstream, team_b):
    provider = provider_for(fake_upstream)
    model_for(provider, name="shared-model")
    model_for(provider, name="team-a-model", team=gateway_client.application.team)
    model_for(provider, name="team-b-model", team=team_b.team)

    names = [model.id for model in gateway_client.sdk.models.list()]

    assert names == ["shared-model", "team-a-model"]
    with pytest.raises(openai.NotFoundError):
        gateway_client.sdk.chat.completions.create(model="team-b-model", messages=MESSAGES)


def test_routing_policy_fixed_model_overrides_the_request(gateway_client, fake_upstream):
    provider = provider_for(fake_upstream)
    model_for(provider)
    model_for(provider, name="pinned-model", provider_model="pinned-upstream")
    RoutingPolicy.objects.create(application=gateway_client.application, model="pinned-model")
    from gateway.catalog import catalog_changed

    catalog_changed()

    raw = gateway_client.sdk.chat.completions.with_raw_response.create(model="fake-model", messages=MESSAGES)

    assert fake_upstream.chat_requests()[-1].body["model"] == "pinned-upstream"
    assert raw.headers["x-controlplane-route"].startswith("pinned-model (policy fixed")
    assert stored_calls(expected=1)[-1].request_model == "fake-model"


def test_a_named_prompt_is_rendered_and_the_request_messages_appended(gateway_client, fake_upstream, team_a):
    from prompts.services import label_move, prompt_create, prompt_version_create

    model_for(provider_for(fake_upstream))
    prompt = prompt_create(caller=None, team=team_a.team, name="support", description="")
    version, _ = prompt_version_create(
        caller=None,
        prompt=prompt,
        messages=[{"role": "system", "content": "You help {{ customer }}."}],
        params={"temperature": 0.1},
    )
    label_move(caller=None, prompt=prompt, label="production", version=version)

    gateway_client.sdk.chat.completions.create(
        model="fake-model",
        messages=MESSAGES,
        extra_body={"prompt": {"name": "support", "variables": {"customer": "Ada"}}},
    )
    with pytest.raises(openai.BadRequestError) as missing:
        gateway_client.sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, extra_body={"prompt": {"name": "support", "variables": {}}}
        )

    sent = fake_upstream.chat_requests()[0].body
    assert sent["messages"] == [{"role": "system", "content": "You help Ada."}, *MESSAGES]
    assert sent["temperature"] == 0.1
    assert "customer" in error_body(missing.value)["message"]
    [call] = stored_calls(expected=1)
    assert (call.prompt_name, call.prompt_version) == ("support", version.number)


def test_a_key_without_the_application_permission_cannot_call_models(live_gateway, team_a, fake_upstream):
    from accounts.services import api_key_create

    model_for(provider_for(fake_upstream))
    _, secret = api_key_create(caller=None, application=team_a.application, name="viewer", role="viewer")
    sdk = openai.OpenAI(base_url=f"{live_gateway}/v1", api_key=secret, max_retries=0)

    with pytest.raises(openai.PermissionDeniedError):
        sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert Call.objects.count() == 0


def test_an_experiment_serves_sticky_variants_and_records_exposures(gateway_client, fake_upstream, team_a):
    from accounts.caller import caller_for_user
    from accounts.types import Role
    from prompts.models import ExperimentExposure
    from prompts.services import (
        VariantSpec,
        experiment_create,
        experiment_start,
        label_move,
        prompt_create,
        prompt_version_create,
    )

    model_for(provider_for(fake_upstream))
    prompt = prompt_create(caller=None, team=team_a.team, name="greeter")
    version_a, _ = prompt_version_create(
        caller=None, prompt=prompt, messages=[{"role": "system", "content": "Variant A"}]
    )
    version_b, _ = prompt_version_create(
        caller=None, prompt=prompt, messages=[{"role": "system", "content": "Variant B"}]
    )
    label_move(caller=None, prompt=prompt, label="production", version=version_a)
    manager = caller_for_user(team_a.members[Role.MANAGER])
    experiment = experiment_create(
        caller=manager,
        prompt=prompt,
        name="a-vs-b",
        label="production",
        variants=[
            VariantSpec(name="a", version=version_a, weight=50),
            VariantSpec(name="b", version=version_b, weight=50),
        ],
    )
    experiment_start(caller=manager, experiment=experiment)

    for user in ("u1", "u2", "u3", "u1"):
        gateway_client.sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, user=user, extra_body={"prompt": {"name": "greeter"}}
        )

    systems = [request.body["messages"][0]["content"] for request in fake_upstream.chat_requests()]
    calls = stored_calls(expected=4)
    assert systems[0] == systems[3]  # the same subject always gets the same variant
    assert {call.experiment_variant for call in calls} <= {"a", "b"}
    assert calls[0].experiment_variant == calls[3].experiment_variant
    exposures = ExperimentExposure.objects.filter(experiment=experiment).order_by("id")
    assert [exposure.call_id for exposure in exposures] == [str(call.id) for call in calls]
    assert all(exposure.is_success for exposure in exposures)


def test_complexity_routing_sends_simple_queries_to_the_small_tier_and_prices_the_saving(
    gateway_client, fake_upstream, team_a
):
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from costs.services import price_set
    from gateway.catalog import catalog_changed

    provider = provider_for(fake_upstream)
    model_for(provider, name="small-model", provider_model="small-upstream", tier="small")
    model_for(provider, name="large-model", provider_model="large-upstream", tier="large")
    for name, price in (("small-model", "1"), ("large-model", "10")):
        price_set(
            caller=None,
            model=name,
            input_per_million=Decimal(price),
            output_per_million=Decimal(price),
            effective_from=timezone.now() - timedelta(days=1),
        )
    RoutingPolicy.objects.create(
        application=gateway_client.application,
        policy="complexity",
        tiers={"small": "small-model", "large": "large-model"},
        threshold=0.5,
    )
    catalog_changed()
    fake_upstream.default = reply("ok", prompt_tokens=1000, completion_tokens=1000)

    gateway_client.sdk.chat.completions.create(
        model="large-model", messages=[{"role": "user", "content": "Hi! What are your opening hours on Saturday?"}]
    )
    gateway_client.sdk.chat.completions.create(
        model="large-model",
        messages=[
            {
                "role": "user",
                "content": "Prove that there are infinitely many primes congruent to 3 mod 4, then write a Python "
                "function that refactors a recursive descent parser into an iterative one, step by step, "
                "analysing the time complexity of each step.",
            }
        ],
    )

    sent = [request.body["model"] for request in fake_upstream.chat_requests()]
    simple, hard = stored_calls(expected=2)
    assert sent == ["small-upstream", "large-upstream"]
    assert (simple.route_tier, hard.route_tier) == ("small", "large")
    assert simple.route_score is not None
    assert simple.route_score < 0.5 < (hard.route_score or 0)
    assert simple.routing_saved_usd == Decimal("0.018")  # 2000 tokens at $10/M instead of $1/M
    assert hard.routing_saved_usd == 0


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {"model": 123, "messages": MESSAGES},
        {"model": "fake-model", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
        {"model": "fake-model", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        {"model": "fake-model", "messages": [{"role": "tool", "content": None}]},
        {"model": "fake-model", "messages": MESSAGES, "prompt": {"name": "x", "variables": "nope"}},
        {"model": "fake-model", "messages": MESSAGES, "metadata": {"nested": {"a": 1}}},
        {"model": "fake-model", "messages": MESSAGES, "documents": [{"id": 1, "text": None}]},
        {"model": "fake-model", "messages": MESSAGES, "stream": "yes"},
        {"model": "fake-model", "messages": MESSAGES, "stream_options": {"include_usage": True}},
        {"model": "fake-model", "messages": "hello"},
    ],
)
def test_odd_bodies_get_a_4xx_not_a_server_error(gateway_client, fake_upstream, body):
    model_for(provider_for(fake_upstream))

    response = httpx.post(
        f"{gateway_client.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway_client.secret}"},
        json=body,
    )

    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]["message"]
