"""Properties of the /v1 request parser: whatever a client sends, the answer is a typed request
or the project's 400, never another exception (which would be a 500).

`parse_chat_request` is checked directly for arbitrary JSON values (and for objects shaped
like a chat request, so that generation reaches past the first checks); arbitrary bytes and
the documents a prompt's context is assembled from are checked through the running gateway.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ApplicationError, ValidationFailed
from gateway.chat import ALLOWED, ChatRequest, parse_chat_request
from gateway.tests.conftest import model_for, provider_for, stored_calls

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "robot", ""])
CONTENT = st.text(max_size=40) | st.none() | JSON_VALUES
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": ROLES, "content": CONTENT}, optional={"name": JSON_VALUES, "tool_calls": JSON_VALUES}
    )
    | JSON_VALUES,
    max_size=4,
)
DOCUMENTS = st.lists(
    st.fixed_dictionaries({}, optional={"id": JSON_SCALARS, "text": CONTENT, "classification": JSON_SCALARS})
    | JSON_VALUES,
    max_size=4,
)
PROMPTS = st.fixed_dictionaries(
    {}, optional={"name": JSON_SCALARS, "label": JSON_SCALARS, "version": JSON_SCALARS, "variables": JSON_VALUES}
)
# Every field the parser knows, each with a plausible value or any JSON value.
FIELD_VALUES = {
    **dict.fromkeys(ALLOWED, JSON_VALUES),
    "model": st.sampled_from(["fake-model", "gpt-4o-mini", " ", ""]) | JSON_VALUES,
    "messages": MESSAGES | JSON_VALUES,
    "documents": DOCUMENTS | JSON_VALUES,
    "prompt": PROMPTS | JSON_VALUES,
    "stream": st.booleans() | JSON_VALUES,
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": JSON_VALUES}) | JSON_VALUES,
    "metadata": st.dictionaries(st.text(max_size=70), JSON_SCALARS, max_size=40) | JSON_VALUES,
}
CHAT_BODIES = st.fixed_dictionaries({}, optional=FIELD_VALUES).flatmap(
    lambda body: (
        st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=2).map(lambda extra: {**body, **extra})
        | st.just(body)
    )
)


def _parses_or_refuses(body: Any) -> None:
    refusal: ApplicationError | None = None
    try:
        request = parse_chat_request(body)
    except ApplicationError as error:  # any other exception fails the property
        refusal = error
    if refusal is not None:
        assert isinstance(refusal, ValidationFailed)
        assert 400 <= refusal.status_code < 500
        assert refusal.message
        return
    assert isinstance(request, ChatRequest)
    assert isinstance(request.model, str)
    assert request.model
    assert isinstance(request.messages, list)
    assert all(isinstance(document.get("id"), str | int) for document in request.documents)


@settings(max_examples=400, deadline=None)
@given(body=JSON_VALUES)
def test_any_json_value_is_a_request_or_a_400(body):
    _parses_or_refuses(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=CHAT_BODIES)
def test_any_object_shaped_like_a_chat_request_is_a_request_or_a_400(body):
    _parses_or_refuses(body)


def test_a_well_formed_request_parses():
    request = parse_chat_request(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Hi"}],
            "documents": [{"id": "faq-1", "text": "Opening hours: 9-5."}, {"id": 2, "text": "Closed on Sundays."}],
        }
    )

    assert request.model == "gpt-4o-mini"
    assert [document["id"] for document in request.documents] == ["faq-1", 2]


@pytest.mark.parametrize(
    ("documents", "param"),
    [
        ([{"text": "no id"}], "documents[0].id"),
        ([{"id": "a", "text": "x"}, {"id": None, "text": "y"}], "documents[1].id"),
        ([{"id": "", "text": "x"}], "documents[0].id"),
        ([{"id": True, "text": "x"}], "documents[0].id"),
        ([{"id": ["a"], "text": "x"}], "documents[0].id"),
    ],
)
def test_a_document_without_an_id_is_refused_naming_it(documents, param):
    with pytest.raises(ValidationFailed) as refusal:
        parse_chat_request({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "documents": documents})

    assert refusal.value.param == param


# Through the gateway ---------------------------------------------------------------------------


@pytest.fixture
def fake_model(fake_upstream: Any) -> Any:
    """`fake-model`, served by the fake upstream: generated bodies naming it reach a provider."""
    return model_for(provider_for(fake_upstream))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.binary(max_size=200)
    | JSON_VALUES.map(lambda value: repr(value).encode())
    | CHAT_BODIES.map(lambda value: httpx.Request("POST", "/", json=value).content)
)
def test_any_bytes_sent_to_the_gateway_get_a_4xx_not_a_server_error(gateway_client, fake_model, body):
    response = httpx.post(
        f"{gateway_client.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway_client.secret}", "Content-Type": "application/json"},
        content=body,
        timeout=30,
    )

    assert response.status_code < 500, response.text


@pytest.mark.parametrize(
    ("document", "param"),
    [
        ({"text": "Opening hours: 9-5."}, "documents[0].id"),
        ({"id": "a", "text": "x", "classification": "top-secret"}, "documents[0].classification"),
        ({"id": "a", "text": "x", "score": "high"}, "documents[0].score"),
    ],
)
def test_a_document_without_an_id_or_with_a_bad_classification_or_score_sent_with_a_prompt_is_a_400_naming_it(
    gateway_client, fake_model, fake_upstream, team_a, document, param
):
    from prompts.services import label_move, prompt_create, prompt_version_create

    prompt = prompt_create(caller=None, team=team_a.team, name="support")
    version, _ = prompt_version_create(
        caller=None, prompt=prompt, messages=[{"role": "system", "content": "Answer from the documents."}]
    )
    label_move(caller=None, prompt=prompt, label="production", version=version)

    response = httpx.post(
        f"{gateway_client.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway_client.secret}"},
        json={
            "model": "fake-model",
            "messages": [{"role": "user", "content": "When are you open?"}],
            "prompt": {"name": "support"},
            "documents": [document],
        },
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert fake_upstream.chat_requests() == []
    stored_calls()  # whatever the gateway records of a refusal, it records without an error
