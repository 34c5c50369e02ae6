"""Classification of prompt versions (issue 6): stored, part of the content, enforced on
resolve and render, masked in lists and pages, refused in diffs."""

from __future__ import annotations

import hashlib
import json
import textwrap
from io import StringIO

import pytest
from django.core.management import call_command

from accounts.caller import caller_for_user
from core.classification import Clearance
from core.errors import PermissionDenied, ValidationFailed
from core.testing import assert_openai_error, assert_refused, snapshot
from prompts import selectors, services
from prompts.models import (
    Prompt,
    PromptVersion,
)
from prompts.tests.conftest import BASE, PROMPT_TABLES, SUPPORT_MESSAGES, version

pytestmark = pytest.mark.django_db

SECRET = "The refund override code is 4417."


@pytest.fixture
def classified(team_a, make_prompt):
    """support v1 internal (production), v2 confidential, v3 restricted (staging).

    Team A's members have confidential clearance: v3 is above theirs."""
    prompt = make_prompt(team_a.team, versions=1)
    for level in ("confidential", "restricted"):
        services.prompt_version_create(
            caller=None,
            prompt=prompt,
            messages=[SUPPORT_MESSAGES[0], {"role": "user", "content": f"{SECRET} ({level})"}],
            classification=level,
        )
    services.label_move(caller=None, prompt=prompt, label="production", version=version(prompt, 1))
    services.label_move(caller=None, prompt=prompt, label="staging", version=version(prompt, 3))
    return prompt


# Content and services -------------------------------------------------------------------


def test_classification_defaults_to_internal_and_keeps_the_old_hash(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=1)
    stored = version(prompt, 1)
    canonical = json.dumps(
        {
            "messages": stored.messages,
            "params": stored.params,
            "variables": stored.variables,
            "context_budget": stored.context_budget,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )

    assert stored.classification == Clearance.INTERNAL
    # Versions stored before classification existed (all internal) keep their hash.
    assert stored.content_hash == hashlib.sha256(canonical.encode()).hexdigest()


def test_same_messages_at_another_level_is_a_new_version(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=1)
    newest = version(prompt, 1)
    same = {"messages": newest.messages, "params": newest.params}

    raised, created = services.prompt_version_create(caller=None, prompt=prompt, classification="confidential", **same)
    again, created_again = services.prompt_version_create(
        caller=None, prompt=prompt, classification=Clearance.CONFIDENTIAL, **same
    )

    assert (raised.number, created, raised.classification) == (2, True, Clearance.CONFIDENTIAL)
    assert raised.content_hash != newest.content_hash
    assert (again.number, created_again) == (2, False)


def test_unknown_classification_is_refused_naming_the_field(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=1)
    before = snapshot(*PROMPT_TABLES)

    with pytest.raises(ValidationFailed) as error:
        services.prompt_version_create(caller=None, prompt=prompt, messages=SUPPORT_MESSAGES, classification="secret")

    assert error.value.param == "classification"
    assert "public, internal, confidential, restricted" in error.value.message
    assert snapshot(*PROMPT_TABLES) == before


# API: create ----------------------------------------------------------------------------


def test_create_version_with_a_classification(team_a, client_for, make_prompt):
    make_prompt(team_a.team, versions=1)
    engineer = client_for(team_a.members["prompt_engineer"])

    response = engineer.post(
        f"{BASE}support/versions/",
        {"messages": [{"role": "user", "content": SECRET}], "classification": "confidential"},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["version"], body["classification"], body["is_masked"]) == (2, "confidential", False)
    assert body["messages"] == [{"role": "user", "content": SECRET}]
    assert PromptVersion.objects.get(prompt__name="support", number=2).classification == Clearance.CONFIDENTIAL


def test_create_version_with_a_bad_classification_is_400(team_a, client_for, make_prompt):
    make_prompt(team_a.team, versions=1)
    engineer = client_for(team_a.members["prompt_engineer"])

    response = assert_refused(
        engineer,
        "post",
        f"{BASE}support/versions/",
        status=400,
        unchanged=PROMPT_TABLES,
        data={"messages": [{"role": "user", "content": "Hi"}], "classification": "top-secret"},
    )

    assert response.json()["error"]["param"] == "classification"


# API: enforcement on resolve and render -------------------------------------------------


def test_internal_key_gets_403_resolving_a_confidential_version(team_a, key_client_for, classified):
    internal_key = key_client_for(team_a.application, clearance=Clearance.INTERNAL)

    response = assert_refused(
        internal_key,
        "get",
        f"{BASE}support/resolve/?version=2",
        status=403,
        unchanged=PROMPT_TABLES,
        code="insufficient_clearance",
    )

    message = response.json()["error"]["message"]
    assert "classified confidential" in message
    assert "needs confidential clearance" in message
    assert SECRET not in response.content.decode()


def test_clearance_is_checked_per_call_after_the_shared_cache(team_a, key_client_for, classified):
    confidential_key = key_client_for(team_a.application, clearance=Clearance.CONFIDENTIAL)
    internal_key = key_client_for(team_a.application, clearance=Clearance.INTERNAL)

    allowed = confidential_key.get(f"{BASE}support/resolve/", {"version": 2})  # fills the resolution cache
    refused = internal_key.get(f"{BASE}support/resolve/", {"version": 2})
    allowed_again = confidential_key.get(f"{BASE}support/resolve/", {"version": 2})
    production = internal_key.get(f"{BASE}support/resolve/")

    assert allowed.status_code == 200
    assert (allowed.json()["version"], allowed.json()["classification"]) == (2, "confidential")
    assert_openai_error(refused, 403, code="insufficient_clearance")
    assert allowed_again.json()["version"] == 2
    assert (production.json()["version"], production.json()["classification"]) == (1, "internal")


def test_a_label_pointing_above_clearance_is_refused_for_resolve_and_render(team_a, key_client_for, classified):
    confidential_key = key_client_for(team_a.application, clearance=Clearance.CONFIDENTIAL)
    restricted_key = key_client_for(team_a.application, clearance=Clearance.RESTRICTED)

    resolved = confidential_key.get(f"{BASE}support/resolve/", {"label": "staging"})
    payload = {"label": "staging", "variables": {"product": "Acme"}}
    rendered = confidential_key.post(f"{BASE}support/render/", payload, format="json")
    allowed = restricted_key.post(f"{BASE}support/render/", payload, format="json")

    assert "needs restricted clearance" in assert_openai_error(resolved, 403)["message"]
    assert_openai_error(rendered, 403, code="insufficient_clearance")
    assert allowed.status_code == 200
    assert allowed.json()["messages"][-1]["content"] == f"{SECRET} (restricted)"


def test_prompt_render_refuses_a_resolution_made_for_someone_else(team_a, classified):
    manager = caller_for_user(team_a.members["manager"])  # confidential clearance
    resolved = selectors.prompt_resolve(caller=manager, name="support", version=2, team_id=team_a.team.id)
    above = selectors.Resolved(
        version=selectors.ResolvedVersion(**{**resolved.version.__dict__, "classification": Clearance.RESTRICTED}),
        label=None,
        assignment=None,
    )

    with pytest.raises(PermissionDenied, match="needs restricted clearance"):
        selectors.prompt_render(caller=manager, resolved=above, variables={})


def test_an_experiment_variant_above_clearance_is_refused(team_a, key_client_for, classified):
    manager = caller_for_user(team_a.members["manager"])
    experiment = services.experiment_create(
        caller=manager,
        prompt=classified,
        name="tone",
        variants=[
            services.VariantSpec(name="A", version=version(classified, 2), weight=1),
            services.VariantSpec(name="B", version=version(classified, 2), weight=1),
        ],
    )
    services.experiment_start(caller=manager, experiment=experiment)
    internal_key = key_client_for(team_a.application, clearance=Clearance.INTERNAL)

    response = internal_key.get(f"{BASE}support/resolve/", {"subject": "user-1"})

    assert_openai_error(response, 403, code="insufficient_clearance")


# API: masking and diff ------------------------------------------------------------------


def test_list_versions_masks_messages_above_the_viewers_clearance(
    team_a, client_for, classified, django_assert_max_num_queries
):
    viewer = client_for(team_a.members["viewer"])  # confidential clearance

    with django_assert_max_num_queries(12):
        response = viewer.get(f"{BASE}support/versions/")

    assert response.status_code == 200
    rows = {row["version"]: row for row in response.json()["results"]}
    assert {number: (row["classification"], row["is_masked"]) for number, row in rows.items()} == {
        3: ("restricted", True),
        2: ("confidential", False),
        1: ("internal", False),
    }
    assert rows[3]["messages"] is None
    assert (rows[3]["labels"], rows[3]["author"]["name"], len(rows[3]["content_hash"])) == (
        ["staging"],
        "prompts_sync",
        64,
    )
    assert rows[2]["messages"][-1]["content"] == f"{SECRET} (confidential)"
    assert "(restricted)" not in response.content.decode()


def test_reading_a_version_or_prompt_masks_above_clearance(team_a, client_for, key_client_for, classified):
    viewer = client_for(team_a.members["viewer"])
    internal_key = key_client_for(team_a.application, role="viewer", clearance=Clearance.INTERNAL)

    restricted = viewer.get(f"{BASE}support/versions/3/")
    confidential_for_internal = internal_key.get(f"{BASE}support/versions/2/")
    detail = viewer.get(f"{BASE}support/")

    assert restricted.status_code == 200
    assert (restricted.json()["is_masked"], restricted.json()["messages"]) == (True, None)
    assert (confidential_for_internal.json()["is_masked"], confidential_for_internal.json()["messages"]) == (True, None)
    assert SECRET not in confidential_for_internal.content.decode()
    newest = detail.json()["newest_version"]
    assert (newest["version"], newest["is_masked"], newest["messages"]) == (3, True, None)


def test_diff_is_refused_when_either_side_is_above_clearance(team_a, client_for, classified):
    viewer = client_for(team_a.members["viewer"])

    allowed = viewer.get(f"{BASE}support/diff/", {"from": 1, "to": 2})
    for query in ("from=2&to=3", "from=3&to=1"):
        response = assert_refused(viewer, "get", f"{BASE}support/diff/?{query}", status=403, unchanged=PROMPT_TABLES)
        assert "needs restricted clearance" in response.json()["error"]["message"]
        assert SECRET not in response.content.decode()

    assert allowed.status_code == 200


# Pages ----------------------------------------------------------------------------------


def test_detail_page_masks_messages_above_clearance(team_a, page_client_for, classified):
    html = page_client_for(team_a.members["viewer"]).get(f"/prompts/{classified.id}/").content.decode()

    assert "<strong>v3</strong>" in html
    assert "Messages hidden: this version is classified restricted, above your clearance." in html
    assert f"{SECRET} (confidential)" in html
    assert f"{SECRET} (restricted)" not in html


def test_diff_page_and_playground_refuse_above_clearance(team_a, page_client_for, classified):
    client = page_client_for(team_a.members["viewer"])
    before = snapshot(*PROMPT_TABLES)

    diff = client.get(f"/prompts/{classified.id}/diff/?from=2&to=3")
    playground = client.post(f"/prompts/{classified.id}/playground/", {"version": "3"}, HTTP_HX_REQUEST="true")

    assert diff.status_code == 403
    assert "needs restricted clearance" in diff.content.decode()
    assert playground.status_code == 403
    assert SECRET not in diff.content.decode() + playground.content.decode()
    assert snapshot(*PROMPT_TABLES) == before


def test_version_form_sets_the_classification_and_never_prefills_masked_messages(team_a, page_client_for, classified):
    client = page_client_for(team_a.members["prompt_engineer"])  # confidential clearance

    form = client.get(f"/prompts/{classified.id}/versions/new/").content.decode()
    created = client.post(
        f"/prompts/{classified.id}/versions/new/",
        {"messages": json.dumps([{"role": "user", "content": "Hi"}]), "classification": "confidential"},
        HTTP_HX_REQUEST="true",
    )
    bad = client.post(
        f"/prompts/{classified.id}/versions/new/",
        {"messages": json.dumps([{"role": "user", "content": "Hi"}]), "classification": "secret"},
        HTTP_HX_REQUEST="true",
    )

    assert SECRET not in form
    assert '<option value="confidential">' in form
    assert created.status_code == 204
    assert version(classified, 4).classification == Clearance.CONFIDENTIAL
    assert bad.status_code == 400
    assert "classification must be one of" in bad.content.decode()
    assert PromptVersion.objects.filter(prompt=classified).count() == 4


# Prompts as code ------------------------------------------------------------------------

YAML = textwrap.dedent(
    """\
    name: payroll
    classification: confidential
    messages:
      - role: system
        content: Answer payroll questions.
    """
)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_yaml_classification_syncs_exports_and_round_trips(tmp_path, team_a):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "payroll.yaml").write_text(YAML)

    run("prompts_sync", str(tmp_path / "in"), "--team", "Team A")
    (tmp_path / "in" / "payroll.yaml").write_text(YAML.replace("confidential", "restricted"))
    raised = run("prompts_sync", str(tmp_path / "in"), "--team", "Team A")
    run("prompts_export", str(tmp_path / "out"), "--team", "Team A")
    exported = (tmp_path / "out" / "payroll.yaml").read_text()
    again = run("prompts_sync", str(tmp_path / "out"), "--team", "Team A")

    prompt = Prompt.objects.get(name="payroll")
    assert list(prompt.versions.order_by("number").values_list("classification", flat=True)) == [
        Clearance.CONFIDENTIAL,
        Clearance.RESTRICTED,
    ]
    assert "payroll: create version 2" in raised
    assert "\nclassification: restricted\n" in exported
    assert "payroll: unchanged (version 2)" in again


def test_yaml_bad_classification_names_file_and_line(tmp_path, team_a):
    (tmp_path / "payroll.yaml").write_text(YAML.replace("confidential", "secret"))
    before = snapshot(*PROMPT_TABLES)
    err = StringIO()

    with pytest.raises(Exception, match="1 invalid file"):
        call_command("prompts_sync", str(tmp_path), stdout=StringIO(), stderr=err)

    assert err.getvalue().startswith(f"{tmp_path / 'payroll.yaml'}:2: classification must be one of")
    assert snapshot(*PROMPT_TABLES) == before
