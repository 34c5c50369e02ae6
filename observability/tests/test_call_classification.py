"""A stored call is masked for every reader below the highest classification of what went into it.

The reproduction (issue 12, item 1): a restricted-clearance key calls the gateway with a
restricted prompt version and a document classified restricted. Readers below restricted
(a public viewer key, a public application key, an internal user, the pages, the cache
page) must not see the system prompt's or the document's text; a restricted reader does.
"""

from __future__ import annotations

import importlib
from typing import Any

import openai
import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Membership
from accounts.services import api_key_create
from accounts.types import Role
from compliance.guardrails import services as guardrail_services
from compliance.guardrails.tests.factories import ClassificationRuleFactory, GuardrailPolicyFactory
from compliance.guardrails.types import InjectionAction
from core.classification import Clearance
from core.testing import assert_openai_error, assert_refused
from gateway.semantic_cache import services as semantic_cache
from gateway.semantic_cache.models import CacheEntry
from gateway.semantic_cache.tests.factories import CacheSettingsFactory
from gateway.tests.conftest import model_for, provider_for, stored_calls
from gateway.tests.fake_upstream import reply
from observability.models import Call
from observability.records import fit_value
from observability.selectors import MASKED_TEXT
from prompts.services import label_move, prompt_create, prompt_version_create

SYSTEM_TEXT = "You brief the board on Project Bluebird, the sale of the Denver plant."
DOCUMENT_TEXT = "Bluebird closing memo: the buyer pays 41 million dollars on June 30."
ANSWER = "Here is the brief you asked for."
SECRETS = ("Bluebird", "Denver", "41 million")
URL = "/api/v1/calls/"
migration = importlib.import_module("observability.migrations.0003_call_classification")


def detail_url(call: Call) -> str:
    return f"{URL}{call.id}/"


def key_client(application: Any, *, role: str, clearance: int) -> APIClient:
    _, secret = api_key_create(caller=None, application=application, name="reader", role=role, clearance=clearance)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def user_with_clearance(team_world: Any, clearance: int) -> Any:
    viewer = team_world.members[Role.VIEWER]
    Membership.objects.filter(user=viewer, team=team_world.team).update(clearance=clearance)
    return viewer


def assert_no_secret(body: str) -> None:
    for secret in SECRETS:
        assert secret not in body


@pytest.fixture
def restricted_call(gateway_client, fake_upstream, team_a, settings) -> Call:
    """The reproduction, through the live gateway and the official SDK."""
    settings.SEMANTIC_CACHE_WRITER = "inline"  # the cache entry is written before the response
    semantic_cache.forget_all()
    model_for(provider_for(fake_upstream))
    GuardrailPolicyFactory.create(application=team_a.application, injection=InjectionAction.OFF)
    CacheSettingsFactory.create(application=team_a.application)
    prompt = prompt_create(caller=None, team=team_a.team, name="board-brief", description="")
    version, _ = prompt_version_create(
        caller=None, prompt=prompt, messages=[{"role": "system", "content": SYSTEM_TEXT}], classification="restricted"
    )
    label_move(caller=None, prompt=prompt, label="production", version=version)
    _, secret = api_key_create(
        caller=None, application=team_a.application, name="board", role=Role.APPLICATION, clearance=Clearance.RESTRICTED
    )
    sdk = openai.OpenAI(base_url=f"{gateway_client.base_url}/v1", api_key=secret, max_retries=0, timeout=30)
    fake_upstream.default = reply(ANSWER)

    sdk.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "Brief me."}],
        temperature=0,
        extra_body={
            "prompt": {"name": "board-brief"},
            "documents": [{"id": "memo", "text": DOCUMENT_TEXT, "classification": "restricted"}],
            "metadata": {"topic": "Bluebird"},
        },
    )

    [call] = stored_calls(expected=1)
    semantic_cache.writer().flush()
    return call


def test_the_record_and_the_cache_entry_carry_the_highest_classification_of_what_went_in(restricted_call):
    sent = str(restricted_call.request_messages)

    assert SYSTEM_TEXT in sent
    assert DOCUMENT_TEXT in sent
    assert restricted_call.classification == Clearance.RESTRICTED
    [entry] = CacheEntry.objects.all()
    assert (entry.clearance, entry.classification) == (Clearance.RESTRICTED, Clearance.RESTRICTED)


@pytest.mark.parametrize(
    ("reader", "clearance"),
    [
        ("viewer key", Clearance.PUBLIC),
        ("application key", Clearance.PUBLIC),
        ("user", Clearance.INTERNAL),
        ("user", Clearance.CONFIDENTIAL),
    ],
)
def test_api_readers_below_the_calls_classification_see_it_masked(restricted_call, team_a, reader, clearance):
    if reader == "user":
        client = APIClient()
        client.force_login(user_with_clearance(team_a, clearance))
    else:
        role = Role.VIEWER if reader == "viewer key" else Role.APPLICATION
        client = key_client(team_a.application, role=role, clearance=clearance)

    detail = client.get(detail_url(restricted_call))
    listed = client.get(URL)

    assert detail.status_code == 200, detail.content
    assert_no_secret(detail.content.decode())
    body = detail.json()
    assert (body["is_masked"], body["classification"]) == (True, "restricted")
    assert body["request_messages"] == [
        {"role": "system", "content": MASKED_TEXT},  # the prompt version
        {"role": "system", "content": MASKED_TEXT},  # the documents block
        {"role": "user", "content": MASKED_TEXT},
    ]
    assert body["response_text"] == MASKED_TEXT
    assert body["metadata"] == {"topic": MASKED_TEXT}
    assert [document["id"] for document in body["context_report"]["documents"]] == [MASKED_TEXT]
    assert listed.status_code == 200
    assert_no_secret(listed.content.decode())
    [row] = listed.json()["results"]
    assert (row["id"], row["is_masked"], row["metadata"]) == (str(restricted_call.id), True, {"topic": MASKED_TEXT})
    stored = Call.objects.get(id=restricted_call.id)
    assert stored.request_messages == restricted_call.request_messages
    assert stored.metadata == {"topic": "Bluebird"}


@pytest.mark.django_db
def test_a_masked_call_does_not_name_its_documents_in_its_guardrail_findings(team_a, make_call):
    # given a restricted call whose injection finding names the document it was found in
    finding = {"type": "injection", "score": 0.97, "action": "flag", "rule": "ignore-previous"}
    call = make_call(
        team_a,
        classification=Clearance.RESTRICTED,
        guardrail_findings=[
            {**finding, "location": "documents[0] (bluebird-sale-memo)"},
            {**finding, "location": "messages[1]"},
        ],
    )
    client = APIClient()
    client.force_login(user_with_clearance(team_a, Clearance.INTERNAL))

    body = client.get(detail_url(call)).json()

    # then an internal reader sees where and what was found, not the document's id
    assert body["is_masked"] is True
    assert body["guardrail_findings"] == [
        {**finding, "location": f"documents[0] ({MASKED_TEXT})"},
        {**finding, "location": "messages[1]"},
    ]
    assert Call.objects.get(id=call.id).guardrail_findings[0]["location"] == "documents[0] (bluebird-sale-memo)"


def test_a_restricted_reader_sees_the_call_whole(restricted_call, team_a):
    client = APIClient()
    client.force_login(user_with_clearance(team_a, Clearance.RESTRICTED))

    body = client.get(detail_url(restricted_call)).json()

    assert body["is_masked"] is False
    assert body["request_messages"][0] == {"role": "system", "content": SYSTEM_TEXT}
    assert DOCUMENT_TEXT in body["request_messages"][1]["content"]
    assert (body["response_text"], body["metadata"]) == (ANSWER, {"topic": "Bluebird"})


def test_the_calls_pages_mask_it_for_an_internal_user(restricted_call, team_a):
    client = Client()
    client.force_login(user_with_clearance(team_a, Clearance.INTERNAL))

    page = client.get(f"/calls/{restricted_call.id}/").content.decode()
    listing = client.get("/calls/").content.decode()

    assert_no_secret(page)
    assert "Masked: above your clearance. This call is classified restricted" in page
    assert page.count(MASKED_TEXT) >= 4  # three messages and the response
    assert f"/calls/{restricted_call.id}/" in listing
    assert "(masked: above your clearance)" in listing


def test_the_cache_page_masks_the_entry_for_an_internal_user_and_a_restricted_one_sees_it(restricted_call, team_a):
    internal = Client()
    internal.force_login(user_with_clearance(team_a, Clearance.INTERNAL))
    url = f"/gateway/cache/{team_a.application.id}/"

    masked = internal.get(url).content.decode()
    Membership.objects.filter(team=team_a.team, user=team_a.members[Role.VIEWER]).update(clearance=Clearance.RESTRICTED)
    whole = internal.get(url).content.decode()

    assert "Brief me." not in masked
    assert ANSWER not in masked
    assert "[hidden: made under restricted clearance]" in masked
    assert ANSWER in whole


# Without the gateway: ingestion, rule matches, existing rows ------------------------------


@pytest.mark.django_db
def test_an_ingested_call_keeps_its_stated_classification_and_rules_can_only_raise_it(team_a, client_for):
    ClassificationRuleFactory.create(
        team=team_a.team, name="codename", keywords=["Nightingale"], level=Clearance.RESTRICTED
    )
    guardrail_services.reset_caches()  # the rule was written past the service that tells every process
    writer = client_for(team_a.members[Role.ADMIN])
    internal = APIClient()
    internal.force_login(user_with_clearance(team_a, Clearance.INTERNAL))

    response = writer.post(
        URL,
        {
            "application": team_a.application.id,
            "calls": [
                {
                    "id": "stated",
                    "model": "m",
                    "messages": [{"role": "user", "content": "Q3 plan"}],
                    "response": "Draft ready.",
                    "classification": "confidential",
                },
                {
                    "id": "ruled",
                    "model": "m",
                    "messages": [{"role": "user", "content": "Nightingale?"}],
                    "classification": "public",
                },
                {"id": "plain", "model": "m", "messages": [{"role": "user", "content": "Hello"}]},
            ],
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    levels = dict(Call.objects.values_list("client_call_id", "classification"))
    assert levels == {"stated": Clearance.CONFIDENTIAL, "ruled": Clearance.RESTRICTED, "plain": Clearance.PUBLIC}
    rows = {row["client_call_id"]: row for row in internal.get(URL).json()["results"]}
    assert {name: row["is_masked"] for name, row in rows.items()} == {"stated": True, "ruled": True, "plain": False}
    stated = internal.get(f"{URL}{rows['stated']['id']}/").json()
    assert (stated["request_messages"], stated["response_text"]) == (
        [{"role": "user", "content": MASKED_TEXT}],
        MASKED_TEXT,
    )


@pytest.mark.django_db
def test_an_unknown_classification_in_an_ingest_is_a_400_naming_it(team_a, client_for):
    batch = {"application": team_a.application.id, "calls": [{"id": "x", "model": "m", "classification": "secret"}]}

    response = assert_refused(
        client_for(team_a.members[Role.ADMIN]), "post", URL, data=batch, status=400, unchanged=[Call]
    )

    assert_openai_error(response, 400, param="calls[0].classification")


@pytest.mark.django_db
def test_the_classification_column_is_fitted_like_every_other(team_a):
    assert fit_value("classification", 2**40) == 32767
    assert fit_value("classification", None) == 0


@pytest.mark.django_db
def test_existing_rows_are_classified_from_their_prompt_version_and_included_documents(team_a, make_call):
    from django.apps import apps
    from django.db import connection

    prompt = prompt_create(caller=None, team=team_a.team, name="old", description="")
    version, _ = prompt_version_create(
        caller=None, prompt=prompt, messages=[{"role": "system", "content": "x"}], classification="confidential"
    )
    key, _ = api_key_create(
        caller=None, application=team_a.application, name="k", role=Role.APPLICATION, clearance=Clearance.INTERNAL
    )
    with_prompt = make_call(team_a, prompt_version_id=version.id)
    with_documents = make_call(team_a, api_key=key.id, context_report={"documents": [{"id": "d", "included": True}]})
    with_dropped = make_call(
        team_a,
        context_report={"documents": [{"id": "d", "status": "dropped", "classification": "restricted"}]},
    )
    plain = make_call(team_a)
    Call.objects.update(classification=Clearance.PUBLIC)  # as the rows were before the column

    class Editor:
        pass

    editor = Editor()
    editor.connection = connection  # type: ignore[attr-defined]
    migration.backfill(apps, editor)

    levels = dict(Call.objects.values_list("id", "classification"))
    assert levels == {
        with_prompt.id: Clearance.CONFIDENTIAL,
        with_documents.id: Clearance.INTERNAL,
        with_dropped.id: Clearance.PUBLIC,
        plain.id: Clearance.PUBLIC,
    }
