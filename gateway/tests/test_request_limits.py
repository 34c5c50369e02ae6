"""No single request can exhaust the gateway: every dimension of a request is bounded (a 400
naming the setting, before any work or reservation), a template bomb is a 400, and a long
word is counted in bounded work."""

from __future__ import annotations

import openai
import pytest

from costs.models import BudgetReservation
from gateway.tests.conftest import model_for, provider_for
from gateway.tests.fake_upstream import reply
from gateway.tests.test_governance import MESSAGES, _price_and_budget, error_body


def _refused(gateway_client, **body) -> dict:
    with pytest.raises(openai.BadRequestError) as refused:
        gateway_client.sdk.chat.completions.create(model="fake-model", max_tokens=5, **body)
    return error_body(refused.value)


def test_requests_over_a_dimension_limit_are_refused_naming_it_before_anything_is_reserved(
    gateway_client, fake_upstream, team_a, settings
):
    # given a budget (so that a call reserves) and small limits
    model_for(provider_for(fake_upstream))
    input_tokens, _ = _price_and_budget(team_a.team, fits=1, max_tokens=5, messages=MESSAGES)
    fake_upstream.default = reply("one two", prompt_tokens=input_tokens, completion_tokens=2)
    settings.REQUEST_MAX_MESSAGES = 3
    settings.REQUEST_MAX_DOCUMENTS = 2
    settings.REQUEST_MAX_TOOLS = 1
    settings.REQUEST_MAX_TEXT_CHARS = 1_000
    settings.REQUEST_MAX_TOTAL_CHARS = 1_500
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

    # when requests go over each limit
    errors = {
        "messages": _refused(gateway_client, messages=[{"role": "user", "content": "hi"}] * 4),
        "documents": _refused(
            gateway_client, messages=MESSAGES, extra_body={"documents": [{"id": "d", "text": "t"}] * 3}
        ),
        "tools": _refused(gateway_client, messages=MESSAGES, tools=[tool, tool]),
        "text": _refused(gateway_client, messages=[{"role": "user", "content": "x" * 1_001}]),
        "parts": _refused(
            gateway_client, messages=[{"role": "user", "content": [{"type": "text", "text": "x" * 1_001}]}]
        ),
        "total": _refused(gateway_client, messages=[{"role": "user", "content": "x" * 800}] * 2),
    }

    # then each is a 400 naming the setting; nothing was reserved or sent upstream
    assert {name: error["code"] for name, error in errors.items()} == {
        "messages": "too_many_messages",
        "documents": "too_many_documents",
        "tools": "too_many_tools",
        "text": "text_too_long",
        "parts": "text_too_long",
        "total": "request_too_large",
    }
    assert "REQUEST_MAX_MESSAGES" in errors["messages"]["message"]
    assert "REQUEST_MAX_DOCUMENTS" in errors["documents"]["message"]
    assert "REQUEST_MAX_TOOLS" in errors["tools"]["message"]
    assert errors["text"]["param"] == "messages[0].content"
    assert errors["parts"]["param"] == "messages[0].content[0].text"
    assert "REQUEST_MAX_TEXT_CHARS" in errors["text"]["message"]
    assert "REQUEST_MAX_TOTAL_CHARS" in errors["total"]["message"]
    assert BudgetReservation.objects.count() == 0
    assert fake_upstream.chat_requests() == []
    # and the budget still serves a call within the limits
    assert gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=5).choices


def test_a_message_over_the_pii_analyzer_limit_is_a_400_not_a_500(gateway_client, fake_upstream):
    # given the default limits: one text of at most 500,000 characters
    model_for(provider_for(fake_upstream))

    # when a 1,000,001-character message arrives (presidio's analyzer refuses over 1,000,000)
    error = _refused(gateway_client, messages=[{"role": "user", "content": "word " * 200_000 + "x"}])

    # then it is refused naming the limit
    assert error["code"] == "text_too_long"
    assert "500,000 characters (the server's REQUEST_MAX_TEXT_CHARS)" in error["message"]
    assert fake_upstream.chat_requests() == []


def test_a_template_bomb_through_the_gateway_is_a_400_naming_the_limit(gateway_client, fake_upstream, team_a):
    from prompts.services import label_move, prompt_create, prompt_version_create

    # given a prompt whose template would build a 100,000,000-character string
    model_for(provider_for(fake_upstream))
    prompt = prompt_create(caller=None, team=team_a.team, name="bomb", description="")
    version, _ = prompt_version_create(
        caller=None, prompt=prompt, messages=[{"role": "system", "content": "{{ 'a' * 100000000 }}"}], params={}
    )
    label_move(caller=None, prompt=prompt, label="production", version=version)

    # when an application calls it
    error = _refused(gateway_client, messages=MESSAGES, extra_body={"prompt": {"name": "bomb"}})

    # then the render is refused before it allocates, naming the limit; nothing reached the provider
    assert error["code"] == "template_output_too_large"
    assert "PROMPT_RENDER_MAX_CHARS" in error["message"]
    assert fake_upstream.chat_requests() == []


def test_a_40000_character_word_is_counted_and_served(gateway_client, fake_upstream):
    # given a message that is one 40,000-character word (23 s of token counting before)
    model_for(provider_for(fake_upstream))
    fake_upstream.default = reply("ok", prompt_tokens=5_000, completion_tokens=1)

    answer = gateway_client.sdk.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "a" * 40_000}], max_tokens=5
    )

    assert answer.choices[0].message.content == "ok"
    assert fake_upstream.chat_requests()[0].body["messages"][0]["content"] == "a" * 40_000
