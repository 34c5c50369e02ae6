from __future__ import annotations

from typing import Any, cast

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import MembershipFactory
from accounts.types import Role
from core.classification import Clearance
from core.testing import assert_hidden, assert_openai_error, assert_refused
from prompts import services
from prompts.models import (
    LabelHistory,
    Prompt,
    PromptLabel,
    PromptVersion,
)
from prompts.tests.conftest import BASE, PROMPT_TABLES, SUPPORT_MESSAGES, version

pytestmark = pytest.mark.django_db

VARIABLES = {"product": "Acme", "customer_name": "Ada", "question": "Where is my parcel?"}


@pytest.fixture
def support(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=2, description="Answers customers", tags=["support"])
    services.label_move(caller=None, prompt=prompt, label="production", version=version(prompt, 1))
    return prompt


# Prompts --------------------------------------------------------------------------------


def test_create_prompt(engineer, team_a):
    response = engineer.post(
        BASE, {"name": "triage", "description": "Routes tickets", "tags": ["b", "a"]}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert {key: body[key] for key in ("team", "name", "description", "tags", "protected_labels", "labels")} == {
        "team": team_a.team.id,
        "name": "triage",
        "description": "Routes tickets",
        "tags": ["a", "b"],
        "protected_labels": ["production"],
        "labels": {},
    }
    assert body["newest_version"] is None
    assert Prompt.objects.get(name="triage").team == team_a.team


def test_create_prompt_bad_input_names_the_field(engineer):
    for payload, param in (
        ({"name": "has space"}, "name"),
        ({"name": "ok", "colour": "red"}, "colour"),
        ({"description": "no name"}, "name"),
    ):
        response = engineer.post(BASE, payload, format="json")
        assert_openai_error(response, 400, param=param)
    assert not Prompt.objects.exists()


def test_create_prompt_twice_is_a_conflict(engineer, support):
    response = engineer.post(BASE, {"name": "support"}, format="json")

    assert_openai_error(response, 409, param="name")


def test_viewer_cannot_create_prompts(viewer):
    assert_refused(viewer, "post", BASE, status=403, data={"name": "x"}, unchanged=PROMPT_TABLES)


def test_member_of_two_teams_must_name_the_team(team_a, team_b, client_for):
    user = team_a.members["prompt_engineer"]
    MembershipFactory(user=user, team=team_b.team, role=Role.PROMPT_ENGINEER, clearance=Clearance.INTERNAL)
    client = client_for(user)

    refused = client.post(BASE, {"name": "x"}, format="json")
    created = client.post(BASE, {"name": "x", "team": team_b.team.id}, format="json")

    assert_openai_error(refused, 400, param="team")
    assert created.status_code == 201
    assert Prompt.objects.get(name="x").team == team_b.team


def test_create_prompt_in_another_team_is_hidden(outsider, team_a):
    assert_hidden(outsider, "post", BASE, data={"name": "x", "team": team_a.team.id}, unchanged=PROMPT_TABLES)


def test_list_prompts_with_filters(engineer, support, make_prompt, team_a, team_b):
    make_prompt(team_a.team, name="billing", tags=["money"])
    make_prompt(team_b.team, name="support")  # same name, other team: never listed

    everything = engineer.get(BASE).json()["results"]
    by_tag = engineer.get(BASE, {"tag": "support"}).json()["results"]
    by_label = engineer.get(BASE, {"label": "production"}).json()["results"]
    by_search = engineer.get(BASE, {"search": "customers"}).json()["results"]

    assert sorted(p["name"] for p in everything) == ["billing", "support"]
    assert {p["team"] for p in everything} == {team_a.team.id}
    assert [p["name"] for p in by_tag] == ["support"]
    assert [(p["name"], p["labels"], p["newest_version"]) for p in by_label] == [("support", {"production": 1}, 2)]
    assert [p["name"] for p in by_search] == ["support"]


@pytest.mark.parametrize("team", ["abc", "%C2%B2", "99999999999999999999999"])
def test_list_prompts_with_a_team_that_is_not_an_id_is_a_400(engineer, team):
    response = engineer.get(f"{BASE}?team={team}")

    assert_openai_error(response, 400, param="team")


def test_list_prompts_query_count_does_not_grow(engineer, make_prompt, team_a):
    for index in range(3):
        prompt = make_prompt(team_a.team, name=f"p{index}")
        services.label_move(caller=None, prompt=prompt, label="production", version=version(prompt, 1))
    with CaptureQueriesContext(connection) as few:
        assert len(engineer.get(BASE).json()["results"]) == 3
    for index in range(3, 9):
        prompt = make_prompt(team_a.team, name=f"p{index}")
        services.label_move(caller=None, prompt=prompt, label="staging", version=version(prompt, 1))

    with CaptureQueriesContext(connection) as many:
        assert len(engineer.get(BASE).json()["results"]) == 9

    assert len(many) == len(few)
    assert len(many) <= 6


def test_get_prompt_with_labels_and_newest_version(viewer, support):
    response = viewer.get(f"{BASE}support/")

    assert response.status_code == 200
    body = response.json()
    assert body["labels"] == {"production": 1}
    newest = body["newest_version"]
    assert (newest["version"], newest["commit_message"], newest["labels"]) == (2, "version 2", [])
    assert newest["variables"] == ["customer_name", "product", "question"]


def test_get_prompt_of_another_team_is_hidden(outsider, support):
    assert_hidden(outsider, "get", f"{BASE}support/", unchanged=PROMPT_TABLES)


def test_same_name_in_two_of_my_teams_needs_team_parameter(team_a, team_b, client_for, support, make_prompt):
    make_prompt(team_b.team, name="support")
    user = team_a.members["viewer"]
    MembershipFactory(user=user, team=team_b.team, role=Role.VIEWER)
    client = client_for(user)

    ambiguous = client.get(f"{BASE}support/")
    chosen = client.get(f"{BASE}support/", {"team": team_b.team.id})

    assert_openai_error(ambiguous, 400, param="team")
    assert "?team=" in ambiguous.json()["error"]["message"]
    assert chosen.json()["team"] == team_b.team.id


def test_patch_prompt(engineer, support):
    response = engineer.patch(f"{BASE}support/", {"description": "New", "tags": ["x"]}, format="json")

    assert response.status_code == 200
    support.refresh_from_db()
    assert (support.description, support.tags) == ("New", ["x"])


# Versions -------------------------------------------------------------------------------


def test_create_version_then_identical_content_returns_it(engineer, support):
    payload = {
        "messages": [{"role": "system", "content": "Be brief, {{ name }}."}],
        "params": {"model": "gpt-4o", "temperature": 0.3},
        "context_budget": {"context_window": 4000, "output_reserve": 500},
        "commit_message": "shorter",
    }

    created = engineer.post(f"{BASE}support/versions/", payload, format="json")
    again = engineer.post(f"{BASE}support/versions/", {**payload, "commit_message": "again"}, format="json")

    assert created.status_code == 201
    body = created.json()
    assert (body["version"], body["variables"], body["commit_message"]) == (3, ["name"], "shorter")
    assert body["author"]["kind"] == "user"
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert PromptVersion.objects.filter(prompt=support).count() == 3


def test_create_version_with_a_syntax_error_names_line_and_column(engineer, support):
    response = engineer.post(
        f"{BASE}support/versions/", {"messages": [{"role": "user", "content": "a\n{% if x %}b"}]}, format="json"
    )

    error = assert_openai_error(response, 400, code="template_syntax_error", param="messages[0].content")
    assert "line 2, column 12" in error["message"]
    assert PromptVersion.objects.filter(prompt=support).count() == 2


def test_create_version_bad_role_and_undeclared_variables(engineer, support):
    bad_role = engineer.post(
        f"{BASE}support/versions/", {"messages": [{"role": "robot", "content": "x"}]}, format="json"
    )
    undeclared = engineer.post(
        f"{BASE}support/versions/",
        {"messages": [{"role": "user", "content": "{{ a }} {{ b }}"}], "variables": ["a"]},
        format="json",
    )

    assert_openai_error(bad_role, 400, param="messages[0].role")
    assert "undeclared variables: b" in assert_openai_error(undeclared, 400, param="variables")["message"]


def test_viewer_cannot_create_versions(viewer, support):
    assert_refused(
        viewer,
        "post",
        f"{BASE}support/versions/",
        status=403,
        data={"messages": SUPPORT_MESSAGES},
        unchanged=PROMPT_TABLES,
    )


def test_create_version_in_another_team_is_hidden(outsider, support):
    assert_hidden(
        outsider, "post", f"{BASE}support/versions/", data={"messages": SUPPORT_MESSAGES}, unchanged=PROMPT_TABLES
    )


def test_get_version(viewer, support):
    response = viewer.get(f"{BASE}support/versions/1/")

    assert response.status_code == 200
    body = response.json()
    assert (body["version"], body["labels"], body["params"]) == (
        1,
        ["production"],
        {"model": "gpt-4o-mini", "temperature": 0.1},
    )
    assert_openai_error(viewer.get(f"{BASE}support/versions/9/"), 404)
    assert_openai_error(viewer.get(f"{BASE}nothing/versions/1/"), 404)


def test_list_versions(viewer, support):
    body = viewer.get(f"{BASE}support/versions/").json()

    assert [v["version"] for v in body["results"]] == [2, 1]


# Labels ---------------------------------------------------------------------------------


def test_move_label_and_read_its_history(manager, support, team_a):
    moved = manager.put(f"{BASE}support/labels/production/", {"version": 2, "reason": "better tone"}, format="json")
    history = manager.get(f"{BASE}support/labels/production/history/")

    assert moved.status_code == 200
    assert moved.json() | {"updated_at": None} == {
        "label": "production",
        "version": 2,
        "is_protected": True,
        "updated_at": None,
    }
    entries = history.json()["results"]
    assert [(e["action"], e["from_version"], e["to_version"], e["reason"]) for e in entries] == [
        ("move", 1, 2, "better tone"),
        ("move", None, 1, ""),
    ]
    assert entries[0]["actor"] == {
        "kind": "user",
        "id": team_a.members["manager"].pk,
        "name": team_a.members["manager"].username,
    }
    assert entries[1]["actor"]["kind"] == "system"


def test_engineer_cannot_move_production(engineer, support):
    assert_refused(
        engineer,
        "put",
        f"{BASE}support/labels/production/",
        status=403,
        data={"version": 2},
        unchanged=PROMPT_TABLES,
    )


def test_engineer_can_move_staging(engineer, support):
    response = engineer.put(f"{BASE}support/labels/staging/", {"version": 2}, format="json")

    assert response.status_code == 200
    assert response.json()["is_protected"] is False


def test_move_label_bad_input(manager, support):
    assert_openai_error(manager.put(f"{BASE}support/labels/production/", {}, format="json"), 400, param="version")
    assert_openai_error(manager.put(f"{BASE}support/labels/production/", {"version": 7}, format="json"), 404)
    assert_openai_error(
        manager.put(f"{BASE}support/labels/Bad Label/", {"version": 1}, format="json"), 400, param="label"
    )
    assert PromptLabel.objects.get(prompt=support).version.number == 1


def test_move_label_in_another_team_is_hidden(outsider, support):
    assert_hidden(outsider, "put", f"{BASE}support/labels/production/", data={"version": 2}, unchanged=PROMPT_TABLES)


def test_rollback(manager, support):
    manager.put(f"{BASE}support/labels/production/", {"version": 2}, format="json")

    response = manager.post(f"{BASE}support/labels/production/rollback/", {"reason": "regression"}, format="json")

    assert response.status_code == 200
    assert response.json()["version"] == 1
    last = LabelHistory.objects.filter(prompt=support).latest("id")
    assert last.from_version is not None
    assert (last.action, last.from_version.number, last.to_version.number, last.reason) == (
        "rollback",
        2,
        1,
        "regression",
    )


def test_rollback_refusals(manager, viewer, outsider, support):
    assert_openai_error(manager.post(f"{BASE}support/labels/production/rollback/"), 409)
    assert_openai_error(manager.post(f"{BASE}support/labels/canary/rollback/"), 404)
    manager.put(f"{BASE}support/labels/production/", {"version": 2}, format="json")
    assert_refused(viewer, "post", f"{BASE}support/labels/production/rollback/", status=403, unchanged=PROMPT_TABLES)
    assert_hidden(outsider, "post", f"{BASE}support/labels/production/rollback/", unchanged=PROMPT_TABLES)


def test_history_of_unknown_label_is_404_and_other_team_hidden(viewer, outsider, support):
    assert_openai_error(viewer.get(f"{BASE}support/labels/canary/history/"), 404)
    assert_hidden(outsider, "get", f"{BASE}support/labels/production/history/", unchanged=PROMPT_TABLES)


def test_list_labels(viewer, support):
    assert viewer.get(f"{BASE}support/labels/").json() == [
        {
            "label": "production",
            "version": 1,
            "is_protected": True,
            "updated_at": PromptLabel.objects.get().updated_at.isoformat().replace("+00:00", "Z"),
        }
    ]


# Resolve and render -----------------------------------------------------------------------


def test_resolve_with_an_api_key(team_a, key_client_for, support):
    client = key_client_for(team_a.application)

    by_label = client.get(f"{BASE}support/resolve/", {"label": "production"})
    by_version = client.get(f"{BASE}support/resolve/", {"version": 2})
    default = client.get(f"{BASE}support/resolve/")

    assert by_label.status_code == 200
    body = by_label.json()
    assert {k: body[k] for k in ("prompt", "version", "label", "experiment", "params")} == {
        "prompt": "support",
        "version": 1,
        "label": "production",
        "experiment": None,
        "params": {"model": "gpt-4o-mini", "temperature": 0.1},
    }
    assert body["messages"][0] == SUPPORT_MESSAGES[0]
    assert by_version.json()["version"] == 2
    assert default.json()["version"] == 1


def test_resolve_errors(viewer, outsider, support):
    assert_openai_error(viewer.get(f"{BASE}support/resolve/", {"label": "canary"}), 404, param="label")
    assert_openai_error(viewer.get(f"{BASE}support/resolve/", {"version": "x"}), 400, param="version")
    assert_openai_error(viewer.get(f"{BASE}support/resolve/", {"version": 1, "label": "production"}), 400)
    assert_hidden(outsider, "get", f"{BASE}support/resolve/", unchanged=PROMPT_TABLES)


def test_resolve_sees_a_label_move_at_once(team_a, key_client_for, manager, support):
    client = key_client_for(team_a.application)
    assert client.get(f"{BASE}support/resolve/").json()["version"] == 1

    manager.put(f"{BASE}support/labels/production/", {"version": 2}, format="json")

    assert client.get(f"{BASE}support/resolve/").json()["version"] == 2


def test_render_with_documents_and_history(team_a, key_client_for, support):
    client = key_client_for(team_a.application, clearance=Clearance.INTERNAL)
    payload = {
        "label": "production",
        "variables": VARIABLES,
        "documents": [
            {"id": "faq-1", "text": "Parcels arrive in 3 days.", "score": 0.9},
            {"id": "hr-1", "text": "Salaries.", "score": 0.99, "classification": "restricted"},
        ],
        "history": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi! How can I help?"}],
    }

    response = client.post(f"{BASE}support/render/", payload, format="json")

    assert response.status_code == 200
    body = response.json()
    assert [m["role"] for m in body["messages"]] == ["system", "system", "user", "assistant", "user"]
    assert body["messages"][0]["content"] == "You are a support agent for Acme."
    assert "[faq-1]\nParcels arrive in 3 days." in body["messages"][1]["content"]
    assert "Salaries" not in str(body["messages"])
    assert body["messages"][-1]["content"] == "Customer Ada asks: Where is my parcel? v"
    assert [(d["id"], d["status"], d["reason"]) for d in body["context"]["documents"]] == [
        ("hr-1", "dropped", "above_clearance"),
        ("faq-1", "included", None),
    ]
    assert body["token_counts"]["total"] > body["token_counts"]["instructions"] > 0
    assert body["context"]["encoding"] == "cl100k_base" or body["context"]["encoding"] == "o200k_base"


def test_render_bad_input(viewer, support):
    missing = viewer.post(f"{BASE}support/render/", {"variables": {"product": "Acme", "extra": 1}}, format="json")
    bad_document = viewer.post(
        f"{BASE}support/render/", {"variables": VARIABLES, "documents": [{"text": "no id"}]}, format="json"
    )
    bad_classification = viewer.post(
        f"{BASE}support/render/",
        {"variables": VARIABLES, "documents": [{"id": "1", "text": "x", "classification": "top-secret"}]},
        format="json",
    )

    message = assert_openai_error(missing, 400, param="variables")["message"]
    assert message.startswith("missing variables: customer_name, question; unexpected variables: extra")
    assert_openai_error(bad_document, 400, param="documents.0.id")
    assert_openai_error(bad_classification, 400, param="documents.0.classification")


def test_render_over_the_window_is_400_with_counts(manager, support):
    manager.post(
        f"{BASE}support/versions/",
        {
            "messages": [{"role": "user", "content": "{{ text }}"}],
            "context_budget": {"context_window": 50, "output_reserve": 10},
        },
        format="json",
    )

    response = manager.post(
        f"{BASE}support/render/", {"label": "latest", "variables": {"text": "word " * 100}}, format="json"
    )

    message = assert_openai_error(response, 400, code="context_length_exceeded")["message"]
    assert "instructions use" in message
    assert "window of 50 tokens" in message


def test_render_in_another_team_is_hidden(outsider, support):
    assert_hidden(outsider, "post", f"{BASE}support/render/", data={"variables": VARIABLES}, unchanged=PROMPT_TABLES)


# Diff -----------------------------------------------------------------------------------


def test_diff(viewer, support):
    response = viewer.get(f"{BASE}support/diff/", {"from": 1, "to": 2})

    assert response.status_code == 200
    body = response.json()
    assert (body["prompt"], body["from"], body["to"], body["identical"]) == ("support", 1, 2, False)
    assert [m["status"] for m in body["messages"]] == ["same", "changed"]
    assert body["params"] == {"temperature": {"status": "changed", "from": 0.1, "to": 0.2}}


def test_diff_bad_input(viewer, outsider, support):
    assert_openai_error(viewer.get(f"{BASE}support/diff/", {"to": 2}), 400, param="from")
    assert_openai_error(viewer.get(f"{BASE}support/diff/", {"from": 1, "to": 5}), 404)
    assert_hidden(outsider, "get", f"{BASE}support/diff/?from=1&to=2", unchanged=PROMPT_TABLES)


# Experiments ----------------------------------------------------------------------------

EXPERIMENT = {
    "name": "tone",
    "label": "production",
    "variants": [{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 2, "weight": 50}],
}


def test_experiment_lifecycle(manager, team_a, key_client_for, support):
    created = manager.post(f"{BASE}support/experiments/", EXPERIMENT, format="json")
    experiment_id = created.json()["id"]
    url = f"{BASE}support/experiments/{experiment_id}/"
    started = manager.post(f"{url}start/")
    app = key_client_for(team_a.application)
    served = {
        subject: app.get(f"{BASE}support/resolve/", {"subject": subject}).json() for subject in ("u1", "u2", "u3", "u4")
    }
    for subject, body in served.items():
        for latency in (100, 120) if body["experiment"]["variant"] == "A" else (300, 320):
            response = app.post(
                f"{url}exposures/",
                {"subject": subject, "call_id": f"call-{subject}", "latency_ms": latency},
                format="json",
            )
            assert response.status_code == 201
            assert response.json()["variant"] == body["experiment"]["variant"]
    results = manager.get(f"{url}results/").json()
    stopped = manager.post(f"{url}stop/", {"winner": "B", "reason": "ship it"}, format="json")

    assert created.status_code == 201
    assert created.json()["status"] == "draft"
    assert created.json()["variants"] == [
        {"name": "A", "version": 1, "weight": 50},
        {"name": "B", "version": 2, "weight": 50},
    ]
    assert started.json()["status"] == "running"
    assert {body["version"] for body in served.values()} <= {1, 2}
    assert all(body["version"] == (1 if body["experiment"]["variant"] == "A" else 2) for body in served.values())
    assert sum(v["calls"] for v in results["variants"]) == 8
    assert results["variants"][0]["metrics"]["latency_ms"]["ci95"][0] is not None or results["variants"][0]["calls"] < 2
    assert results["verdicts"]
    assert stopped.json()["status"] == "stopped"
    assert stopped.json()["winner"] == "B"
    assert PromptLabel.objects.get(prompt=support, name="production").version.number == 2
    last = LabelHistory.objects.filter(prompt=support).latest("id")
    assert (last.action, last.reason) == ("experiment_winner", "ship it")


def test_experiment_results_verdict_says_which_is_better():
    from prompts.results import summarize

    class Variant:
        def __init__(self, id, name, number):
            self.id, self.name, self.weight = id, name, 1
            self.version = type("V", (), {"number": number})()

    rows = [(1, 100.0 + i % 5, None, None, None) for i in range(40)] + [
        (2, 150.0 + i % 5, None, None, None) for i in range(40)
    ]

    result = summarize(variants=cast(Any, [Variant(1, "A", 1), Variant(2, "B", 2)]), rows=rows)

    assert any(v.startswith("A is better than B on latency_ms with p=") for v in result["verdicts"])
    assert result["variants"][1]["versus_control"]["latency_ms"]["p_value"] < 0.001


def test_experiment_not_enough_data_verdict():
    from prompts.results import summarize

    class Variant:
        def __init__(self, id, name):
            self.id, self.name, self.weight = id, name, 1
            self.version = type("V", (), {"number": 1})()

    rows = [
        (1, 100.0, None, None, True),
        (1, 104.0, None, None, False),
        (2, 101.0, None, None, True),
        (2, 106.0, None, None, True),
    ]

    result = summarize(variants=cast(Any, [Variant(1, "A"), Variant(2, "B")]), rows=rows)

    assert any(
        "not enough data yet" in verdict and "more calls per variant" in verdict for verdict in result["verdicts"]
    )


def test_segment_rules_limit_the_experiment(manager, team_a, key_client_for, support):
    experiment_id = manager.post(
        f"{BASE}support/experiments/", {**EXPERIMENT, "segment": {"country": "FR"}}, format="json"
    ).json()["id"]
    manager.post(f"{BASE}support/experiments/{experiment_id}/start/")
    app = key_client_for(team_a.application)

    outside = app.get(f"{BASE}support/resolve/", {"subject": "u1", "metadata.country": "DE"}).json()
    inside = app.get(f"{BASE}support/resolve/", {"subject": "u1", "metadata.country": "FR"}).json()

    assert outside["experiment"] is None
    assert outside["version"] == 1
    assert inside["experiment"]["experiment"] == "tone"


def test_experiment_refusals(manager, engineer, viewer, outsider, support):
    assert_openai_error(
        manager.post(
            f"{BASE}support/experiments/", {**EXPERIMENT, "variants": EXPERIMENT["variants"][:1]}, format="json"
        ),
        400,
        param="variants",
    )
    assert_refused(viewer, "post", f"{BASE}support/experiments/", status=403, data=EXPERIMENT, unchanged=PROMPT_TABLES)
    assert_hidden(outsider, "post", f"{BASE}support/experiments/", data=EXPERIMENT, unchanged=PROMPT_TABLES)
    experiment_id = engineer.post(f"{BASE}support/experiments/", EXPERIMENT, format="json").json()["id"]
    url = f"{BASE}support/experiments/{experiment_id}/"
    # Starting an experiment on production serves a new version to users: a deployment.
    assert_refused(engineer, "post", f"{url}start/", status=403, unchanged=PROMPT_TABLES)
    assert_openai_error(manager.post(f"{url}exposures/", {"subject": "u1"}, format="json"), 409)
    assert_hidden(outsider, "get", f"{url}results/", unchanged=PROMPT_TABLES)
    assert_hidden(outsider, "post", f"{url}start/", unchanged=PROMPT_TABLES)
    manager.post(f"{url}start/")
    assert_openai_error(manager.post(f"{url}stop/", {"winner": "C"}, format="json"), 400, param="winner")
    assert_refused(viewer, "post", f"{url}exposures/", status=403, data={"subject": "u1"}, unchanged=PROMPT_TABLES)
    assert_refused(engineer, "post", f"{url}stop/", status=403, data={"winner": "B"}, unchanged=PROMPT_TABLES)
    assert manager.get(f"{BASE}support/experiments/").json()["results"][0]["status"] == "running"
    assert manager.get(url).json()["name"] == "tone"
