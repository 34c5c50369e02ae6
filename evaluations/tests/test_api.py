"""The datasets and scorers API: team scoping on every endpoint, clearance, bad input as 4xx."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Membership
from core.classification import Clearance
from core.testing import assert_hidden, assert_refused
from evaluations import services
from evaluations.models import Dataset, DatasetItem, DatasetVersion, ScorerConfig
from evaluations.tests.conftest import new_items

WATCHED = (Dataset, DatasetItem, DatasetVersion, ScorerConfig)


@pytest.fixture
def api(client_for, team_a):
    return client_for(team_a.members["prompt_engineer"])


def test_dataset_lifecycle_through_the_api(api, team_a):
    created = api.post("/api/v1/datasets/", {"name": "support", "classification": "internal"}, format="json")
    assert created.status_code == 201, created.content
    dataset_id = created.json()["id"]
    items = [
        {"input": "Where is my parcel?", "expected_output": "Tracking link", "tags": ["shipping"]},
        {"input": "Refund?"},
    ]
    added = api.post(f"/api/v1/datasets/{dataset_id}/items/", {"items": items}, format="json")
    assert added.status_code == 201
    assert added.json()["version"] == 2
    listed = api.get(f"/api/v1/datasets/{dataset_id}/items/").json()["results"]
    key = listed[0]["key"]
    assert listed[0]["provenance"]["source"] == "manual"
    changed = api.put(f"/api/v1/datasets/{dataset_id}/items/{key}/", {"input": "Where is my package?"}, format="json")
    assert changed.json()["version"] == 3
    assert api.delete(f"/api/v1/datasets/{dataset_id}/items/{key}/").json()["version"] == 4
    at_2 = api.get(f"/api/v1/datasets/{dataset_id}/items/?version=2").json()["results"]
    assert at_2[0]["input"]["messages"][0]["content"] == "Where is my parcel?"
    assert len(api.get(f"/api/v1/datasets/{dataset_id}/items/").json()["results"]) == 1
    assert [v["version"] for v in api.get(f"/api/v1/datasets/{dataset_id}/versions/").json()] == [4, 3, 2, 1]
    export = api.get(f"/api/v1/datasets/{dataset_id}/export/?version=3")
    lines = [json.loads(line) for line in b"".join(export.streaming_content).decode().splitlines()]
    assert sorted(line["input"]["messages"][0]["content"] for line in lines) == ["Refund?", "Where is my package?"]
    upload = SimpleUploadedFile("more.jsonl", b'{"input": "a"}\n{"input": 5}\n')
    refused = api.post(f"/api/v1/datasets/{dataset_id}/import/", {"file": upload}, format="multipart")
    assert refused.status_code == 400
    assert "line 2: input:" in refused.json()["error"]["message"]
    ok = api.post(
        f"/api/v1/datasets/{dataset_id}/import/",
        {"file": SimpleUploadedFile("m.jsonl", b'{"input": "a"}\n')},
        format="multipart",
    )
    assert ok.status_code == 201
    assert ok.json()["version"] == 5
    assert api.post(f"/api/v1/datasets/{dataset_id}/archive/").json()["is_archived"] is True
    assert api.post(f"/api/v1/datasets/{dataset_id}/items/", {"items": items}, format="json").status_code == 409


def test_bad_input_is_a_4xx_naming_the_problem(api, team_a, engineer):
    dataset = services.dataset_create(caller=engineer, team_id=team_a.team.id, name="d")
    base = f"/api/v1/datasets/{dataset.pk}"
    assert_refused(api, "post", "/api/v1/datasets/", status=409, unchanged=WATCHED, data={"name": "d"})
    assert_refused(
        api, "post", "/api/v1/datasets/", status=400, unchanged=WATCHED, data={"name": "x", "item_schema": {"type": 1}}
    )
    assert_refused(
        api, "post", f"{base}/items/", status=400, unchanged=WATCHED, data={"items": [{"input": "ok"}, {"nope": 1}]}
    )
    assert_refused(api, "get", f"{base}/items/?version=99", status=404, unchanged=WATCHED)
    assert_refused(api, "get", f"{base}/items/?version={2**63}", status=400, unchanged=WATCHED)
    assert_refused(api, "get", f"/api/v1/datasets/{2**63}/", status=404, unchanged=WATCHED)
    assert_refused(api, "delete", f"{base}/items/{uuid.uuid4()}/", status=400, unchanged=WATCHED)
    assert_refused(
        api,
        "post",
        "/api/v1/scorers/",
        status=400,
        unchanged=WATCHED,
        data={"name": "r", "kind": "regex", "config": {"pattern": "(a"}},
    )
    error = assert_refused(
        api,
        "post",
        "/api/v1/scorers/",
        status=400,
        unchanged=WATCHED,
        data={"name": "j", "kind": "json_schema", "config": {"schema": {"type": "bogus"}}},
    ).json()
    assert "invalid JSON Schema" in error["error"]["message"]


def test_another_teams_objects_are_hidden_on_every_endpoint(client_for, team_a, team_b, engineer):
    dataset = services.dataset_create(caller=engineer, team_id=team_a.team.id, name="a")
    services.dataset_items_change(caller=engineer, dataset=dataset, add=new_items({"input": "q"}))
    key = DatasetItem.objects.get().key
    scorer = services.scorer_config_create(
        caller=engineer, team_id=team_a.team.id, name="s", kind="exact_match", config={}
    )
    outsider = client_for(team_b.members["admin"])
    base = f"/api/v1/datasets/{dataset.pk}"
    cases: list[tuple[str, str, dict | None]] = [
        ("get", f"{base}/", None),
        ("patch", f"{base}/", {"name": "stolen"}),
        ("post", f"{base}/archive/", None),
        ("get", f"{base}/versions/", None),
        ("get", f"{base}/items/", None),
        ("post", f"{base}/items/", {"items": [{"input": "x"}]}),
        ("post", f"{base}/items/batch/", {"remove": [str(key)]}),
        ("get", f"{base}/items/{key}/", None),
        ("delete", f"{base}/items/{key}/", None),
        ("get", f"{base}/export/", None),
        ("post", f"{base}/from-calls/", {"call_ids": [str(uuid.uuid4())]}),
        ("get", f"/api/v1/scorers/{scorer.pk}/", None),
        ("patch", f"/api/v1/scorers/{scorer.pk}/", {"config": {}}),
        ("post", f"/api/v1/scorers/{scorer.pk}/score/", {"output": "x"}),
    ]
    for method, url, data in cases:
        assert_hidden(outsider, method, url, unchanged=WATCHED, data=data)
    assert outsider.get("/api/v1/datasets/").json()["results"] == []
    assert outsider.get("/api/v1/scorers/").json()["configured"] == []


def test_viewer_below_clearance_sees_no_content_and_cannot_write(client_for, team_a, engineer):
    dataset = services.dataset_create(
        caller=engineer,
        team_id=team_a.team.id,
        name="c",
        description="secret plan",
        classification=Clearance.CONFIDENTIAL,
    )
    services.dataset_items_change(caller=engineer, dataset=dataset, add=new_items({"input": "classified question"}))
    Membership.objects.filter(user=team_a.members["viewer"]).update(clearance=Clearance.INTERNAL)
    viewer = client_for(team_a.members["viewer"])
    detail = viewer.get(f"/api/v1/datasets/{dataset.pk}/").json()
    assert detail["is_masked"] is True
    assert detail["description"] is None
    (item,) = viewer.get(f"/api/v1/datasets/{dataset.pk}/items/").json()["results"]
    assert item["is_masked"] is True
    assert item["input"] is None
    export = b"".join(viewer.get(f"/api/v1/datasets/{dataset.pk}/export/").streaming_content)
    assert b"classified" not in export
    assert_refused(
        viewer,
        "post",
        f"/api/v1/datasets/{dataset.pk}/items/",
        status=403,
        unchanged=WATCHED,
        data={"items": [{"input": "x"}]},
    )


def test_scorers_api_lists_builtins_and_scores_examples(api, team_a):
    listed = api.get("/api/v1/scorers/").json()
    kinds = {entry["kind"]: entry for entry in listed["builtin"]}
    assert {"exact_match", "toxicity", "brand_compliance", "groundedness"} <= set(kinds)
    assert kinds["regex"]["version"] == "1"
    created = api.post(
        "/api/v1/scorers/", {"name": "zip", "kind": "regex", "config": {"pattern": r"\d{5}"}}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["version"] == 1
    scored = api.post(f"/api/v1/scorers/{created.json()['id']}/score/", {"output": "ZIP 75001"}, format="json").json()
    assert scored["score"]["passed"] is True
    assert scored["score"]["scorer"] == "regex"
    updated = api.patch(
        f"/api/v1/scorers/{created.json()['id']}/", {"config": {"pattern": "^x$"}}, format="json"
    ).json()
    assert updated["version"] == 2
    cannot = api.post("/api/v1/scorers/test/", {"kind": "exact_match", "output": "x"}, format="json").json()
    assert cannot["score"] is None
    assert "expected output" in cannot["error"]
    policy = api.post("/api/v1/brand-policies/", {"name": "brand", "rules": {"competitors": ["Acme"]}}, format="json")
    assert policy.status_code == 201
    bad_rules = api.post("/api/v1/brand-policies/", {"name": "b2", "rules": {"competitors": "Acme"}}, format="json")
    assert bad_rules.status_code == 400
    assert "competitors" in bad_rules.json()["error"]["message"]
    brand = api.post(
        "/api/v1/scorers/test/",
        {"kind": "brand_compliance", "config": {"policy": policy.json()["id"]}, "output": "Try Acme instead."},
        format="json",
    ).json()
    assert brand["score"]["details"]["failed_rules"] == ["competitors"]


def test_viewer_cannot_create(client_for, team_a):
    viewer = client_for(team_a.members["viewer"])
    assert_refused(viewer, "post", "/api/v1/datasets/", status=403, unchanged=WATCHED, data={"name": "x"})
    assert_refused(
        viewer, "post", "/api/v1/scorers/", status=403, unchanged=WATCHED, data={"name": "x", "kind": "toxicity"}
    )
