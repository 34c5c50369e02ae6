from __future__ import annotations

import json

import pytest

from core.testing import snapshot
from prompts import services
from prompts.models import LabelHistory, Prompt, PromptLabel, PromptVersion
from prompts.tests.conftest import version

pytestmark = pytest.mark.django_db
TABLES = (Prompt, PromptVersion, PromptLabel, LabelHistory)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def support(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=2, tags=["support"])
    services.label_move(caller=None, prompt=prompt, label="production", version=version(prompt, 1))
    return prompt


def test_list_page_filters_and_returns_rows_for_htmx(team_a, team_b, page_client_for, support, make_prompt):
    make_prompt(team_b.team, name="secret-prompt")
    client = page_client_for(team_a.members["viewer"])

    page = client.get("/prompts/")
    partial = client.get("/prompts/", {"q": "nothing-matches"}, **HTMX)
    by_label = client.get("/prompts/", {"label": "production"}, **HTMX)

    assert page.status_code == 200
    html = page.content.decode()
    assert "<h1>Prompts</h1>" in html
    assert "support" in html
    assert "production → v1" in html
    assert "secret-prompt" not in html
    assert "New prompt" not in html  # viewers cannot create
    assert "<h1>" not in partial.content.decode()
    assert "No prompts match" in partial.content.decode()
    assert "support" in by_label.content.decode()


def test_detail_page_shows_versions_labels_and_history(team_a, page_client_for, support):
    html = page_client_for(team_a.members["manager"]).get(f"/prompts/{support.id}/").content.decode()

    assert "<strong>v2</strong>" in html
    assert "<strong>v1</strong>" in html
    assert 'hx-confirm="Roll production back' in html
    assert "Deploy</button>" in html
    assert "Label history" in html


def test_other_teams_pages_are_404(team_b, page_client_for, support):
    client = page_client_for(team_b.members["admin"])
    before = snapshot(*TABLES)

    for url in (f"/prompts/{support.id}/", f"/prompts/{support.id}/diff/", f"/prompts/{support.id}/playground/"):
        assert client.get(url).status_code == 404
    response = client.post(f"/prompts/{support.id}/labels/deploy/", {"label": "production", "version": 2}, **HTMX)

    assert response.status_code == 404
    assert snapshot(*TABLES) == before


def test_deploy_and_rollback_through_the_page(team_a, page_client_for, support):
    client = page_client_for(team_a.members["manager"])

    deployed = client.post(
        f"/prompts/{support.id}/labels/deploy/", {"label": "production", "version": 2, "reason": "ok"}, **HTMX
    )
    assert PromptLabel.objects.get(prompt=support, name="production").version.number == 2
    rolled_back = client.post(f"/prompts/{support.id}/labels/production/rollback/", **HTMX)

    assert deployed.status_code == 200
    assert "<td>v2</td>" in deployed.content.decode()
    assert rolled_back.status_code == 200
    assert PromptLabel.objects.get(prompt=support, name="production").version.number == 1
    assert list(LabelHistory.objects.filter(prompt=support).values_list("action", flat=True).order_by("id")) == [
        "move",
        "move",
        "rollback",
    ]


def test_deploy_without_permission_is_refused_and_nothing_changes(team_a, page_client_for, support):
    client = page_client_for(team_a.members["prompt_engineer"])
    before = snapshot(*TABLES)

    response = client.post(f"/prompts/{support.id}/labels/deploy/", {"label": "production", "version": 2}, **HTMX)

    assert response.status_code == 403
    assert "prompts.deploy_prompt" in response.content.decode()
    assert snapshot(*TABLES) == before


def test_diff_page_is_side_by_side(team_a, page_client_for, support):
    html = page_client_for(team_a.members["viewer"]).get(f"/prompts/{support.id}/diff/?from=1&to=2").content.decode()

    assert "v1 → v2" in html
    assert '<tr class="replace"><td class="left">Customer {{ customer_name }} asks: {{ question }} v</td>' in html
    assert "temperature" in html


def test_playground_renders_with_the_context_report(team_a, page_client_for, support):
    client = page_client_for(team_a.members["viewer"])
    form = {
        "version": "2",
        "variables": json.dumps({"product": "Acme", "customer_name": "Ada", "question": "Refund?"}),
        "documents": json.dumps([{"id": "doc-1", "text": "Refunds take 5 days.", "score": 0.5}]),
        "history": "[]",
    }

    page = client.get(f"/prompts/{support.id}/playground/")
    result = client.post(f"/prompts/{support.id}/playground/", form, **HTMX)
    bad = client.post(f"/prompts/{support.id}/playground/", {**form, "variables": "{not json"}, **HTMX)

    assert page.status_code == 200
    assert "customer_name" in page.content.decode()
    html = result.content.decode()
    assert "You are a support agent for Acme." in html
    assert "doc-1" in html
    assert "included" in html
    assert bad.status_code == 400
    assert "variables: not valid JSON" in bad.content.decode()


def test_playground_answers_bad_documents_and_history_with_a_400_naming_the_field(team_a, page_client_for, support):
    client = page_client_for(team_a.members["viewer"])
    form = {"version": "2", "variables": json.dumps({"product": "Acme", "customer_name": "Ada", "question": "?"})}
    bad_inputs = [
        ("documents", [{"id": "a", "text": "b", "score": "zz"}]),
        ("documents", [{"id": "a", "text": "b", "classification": "bogus"}]),
        ("history", [{"role": "bogus", "content": "hi"}]),
    ]

    for field, value in bad_inputs:
        response = client.post(f"/prompts/{support.id}/playground/", {**form, field: json.dumps(value)}, **HTMX)

        assert response.status_code == 400, (field, value)
        assert f"{field}:" in response.content.decode()


def test_diff_page_with_versions_that_are_not_numbers_is_not_a_server_error(team_a, page_client_for, support):
    client = page_client_for(team_a.members["viewer"])

    responses = [client.get(f"/prompts/{support.id}/diff/?{query}") for query in ("to=%C2%B2", "from=x&to=2")]

    assert [response.status_code for response in responses] == [404, 404]


def test_create_prompt_and_version_through_the_pages(team_a, page_client_for):
    client = page_client_for(team_a.members["prompt_engineer"])

    created = client.post("/prompts/new/", {"team": team_a.team.id, "name": "faq", "tags": "a, b"}, **HTMX)
    prompt = Prompt.objects.get(name="faq")
    form = client.get(f"/prompts/{prompt.id}/versions/new/")
    versioned = client.post(
        f"/prompts/{prompt.id}/versions/new/",
        {
            "messages": json.dumps([{"role": "user", "content": "Hi {{ name }}"}]),
            "params": "{}",
            "commit_message": "first",
        },
        **HTMX,
    )

    assert created.status_code == 204
    assert created["HX-Redirect"] == f"/prompts/{prompt.id}/"
    assert prompt.tags == ["a", "b"]
    assert form.status_code == 200
    assert versioned.status_code == 204
    assert PromptVersion.objects.get(prompt=prompt).variables == ["name"]


def test_experiment_page_shows_results(team_a, page_client_for, support):
    from accounts.caller import caller_for_user

    manager = caller_for_user(team_a.members["manager"])
    experiment = services.experiment_create(
        caller=manager,
        prompt=support,
        name="tone",
        variants=[
            services.VariantSpec(name="A", version=version(support, 1), weight=1),
            services.VariantSpec(name="B", version=version(support, 2), weight=1),
        ],
    )
    services.experiment_start(caller=manager, experiment=experiment)
    for index in range(20):
        services.experiment_exposure_record(
            caller=None, experiment=experiment, subject=f"u{index}", latency_ms=100 + index
        )

    html = (
        page_client_for(team_a.members["viewer"])
        .get(f"/prompts/{support.id}/experiments/{experiment.id}/")
        .content.decode()
    )

    assert "Experiment tone" in html
    assert "(control)" in html
    assert "<svg" in html
    assert "latency_ms" in html
