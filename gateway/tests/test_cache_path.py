"""The semantic cache on the gateway path: hits served without a model call, as JSON or as a
stream, recorded with the entry, the similarity and the saving; shadow mode serves nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from openai.types.chat import ChatCompletionMessageParam

from accounts.services import api_key_create
from accounts.types import Role
from compliance.guardrails.models import GuardrailPolicy
from compliance.guardrails.types import InjectionAction
from core.classification import Clearance
from costs.services import price_set
from gateway.semantic_cache.models import CacheSettings
from gateway.semantic_cache.types import CacheMode
from gateway.tests.conftest import model_for, provider_for, stored_calls
from gateway.tests.fake_upstream import reply
from observability.types import CacheResult

QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "How do I reset my password?"}]


@pytest.fixture
def cached_app(gateway_client, fake_upstream, settings):
    settings.SEMANTIC_CACHE_WRITER = "inline"  # fills are written before the next request
    model_for(provider_for(fake_upstream))
    price_set(
        caller=None,
        model="fake-model",
        input_per_million=Decimal("100"),
        output_per_million=Decimal("100"),
        effective_from=timezone.now() - timedelta(days=1),
    )
    GuardrailPolicy.objects.create(application=gateway_client.application, injection=InjectionAction.OFF)
    fake_upstream.default = reply("Use the reset link on the sign-in page.", prompt_tokens=100, completion_tokens=100)
    return gateway_client


def set_mode(application, mode: str) -> None:
    CacheSettings.objects.update_or_create(application=application, defaults={"mode": mode})


def test_a_repeated_question_is_served_from_the_cache_with_zero_cost(cached_app, fake_upstream):
    set_mode(cached_app.application, CacheMode.ON)

    first = cached_app.sdk.chat.completions.with_raw_response.create(
        model="fake-model", messages=QUESTION, temperature=0
    )
    second = cached_app.sdk.chat.completions.with_raw_response.create(
        model="fake-model", messages=QUESTION, temperature=0
    )

    assert len(fake_upstream.chat_requests()) == 1
    assert first.headers["x-controlplane-cache"] == "miss"
    assert second.headers["x-controlplane-cache"] == "hit"
    assert second.parse().choices[0].message.content == "Use the reset link on the sign-in page."
    miss, hit = stored_calls(expected=2)
    assert (miss.cache_result, hit.cache_result) == (CacheResult.MISS, CacheResult.HIT)
    assert miss.cost_usd == Decimal("0.02")
    assert hit.cost_usd == 0
    assert hit.cache_saved_usd == Decimal("0.02")
    assert hit.cache_similarity == 1.0
    assert hit.cache_entry_id


def test_a_paraphrase_is_a_semantic_hit_and_a_streaming_client_gets_it_as_a_stream(cached_app, fake_upstream):
    set_mode(cached_app.application, CacheMode.ON)
    cached_app.sdk.chat.completions.create(model="fake-model", messages=QUESTION, temperature=0)

    chunks = list(
        cached_app.sdk.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "how can i reset my password"}],
            temperature=0,
            stream=True,
        )
    )

    assert len(fake_upstream.chat_requests()) == 1
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "Use the reset link on the sign-in page."
    )
    hit = stored_calls(expected=2)[-1]
    assert hit.cache_result == CacheResult.HIT
    assert hit.cache_similarity is not None
    assert hit.cache_similarity < 1.0


def test_shadow_mode_records_the_would_be_hit_but_serves_the_model(cached_app, fake_upstream):
    set_mode(cached_app.application, CacheMode.SHADOW)

    for _ in range(2):
        cached_app.sdk.chat.completions.create(model="fake-model", messages=QUESTION, temperature=0)

    assert len(fake_upstream.chat_requests()) == 2
    second = stored_calls(expected=2)[-1]
    assert second.cache_result == CacheResult.SHADOW_HIT
    assert second.cache_entry_id
    assert second.cost_usd == Decimal("0.02")


def test_an_entry_made_under_a_higher_clearance_is_not_served_to_a_lower_one(cached_app, fake_upstream, live_gateway):
    import openai

    set_mode(cached_app.application, CacheMode.ON)
    _, confidential_secret = api_key_create(
        caller=None,
        application=cached_app.application,
        name="conf",
        role=Role.APPLICATION,
        clearance=Clearance.CONFIDENTIAL,
    )
    confidential = openai.OpenAI(base_url=f"{live_gateway}/v1", api_key=confidential_secret, max_retries=0)
    confidential.chat.completions.create(model="fake-model", messages=QUESTION, temperature=0)

    cached_app.sdk.chat.completions.create(model="fake-model", messages=QUESTION, temperature=0)  # internal key

    assert len(fake_upstream.chat_requests()) == 2
    assert stored_calls(expected=2)[-1].cache_result == CacheResult.MISS


def test_errors_are_never_cached(cached_app, fake_upstream):
    from gateway.tests.fake_upstream import fail

    set_mode(cached_app.application, CacheMode.ON)
    fake_upstream.enqueue(fail(400, message="bad"))

    with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK's 400 error; only its side effect matters
        cached_app.sdk.chat.completions.create(model="fake-model", messages=QUESTION, temperature=0)
    cached_app.sdk.chat.completions.create(model="fake-model", messages=QUESTION, temperature=0)

    assert len(fake_upstream.chat_requests()) == 2
    assert stored_calls(expected=2)[-1].cache_result == CacheResult.MISS


def test_under_the_default_guardrail_policy_a_benign_answer_is_cached(cached_app, fake_upstream):
    GuardrailPolicy.objects.filter(application=cached_app.application).delete()  # back to the defaults
    set_mode(cached_app.application, CacheMode.ON)

    for _ in range(2):
        cached_app.sdk.chat.completions.create(model="fake-model", messages=QUESTION, temperature=0)

    assert len(fake_upstream.chat_requests()) == 1
    assert stored_calls(expected=2)[-1].cache_result == CacheResult.HIT
