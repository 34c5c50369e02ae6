"""The evaluation pages: datasets, scorers and runs, with team scoping (another team's object is
404 and nothing changes), roles (a viewer reads but cannot change or run: 403, nothing made),
full page vs htmx partial, and uploads refused line by line."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.caller import caller_for_user
from accounts.types import Role
from core.classification import Clearance
from core.testing import assert_hidden, assert_refused, snapshot
from evaluations import execution, services
from evaluations.models import Dataset, DatasetItem, DatasetVersion, EvalResult, EvalRun, EvaluationGate, ScorerConfig
from evaluations.services import runs
from evaluations.tests.conftest import new_items
from evaluations.types import RunStatus
from prompts import services as prompt_services

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
DATASET_ROWS = (Dataset, DatasetVersion, DatasetItem)
RUN_ROWS = (EvalRun, EvalResult)


def text(response: Any) -> str:
    return response.content.decode()


def is_full_page(response: Any) -> bool:
    return "<html" in text(response)


def fill(dataset: Dataset, caller: Any, count: int = 3) -> None:
    services.dataset_items_change(
        caller=caller,
        dataset=dataset,
        add=new_items(*({"input": f"question {n}", "expected_output": f"answer {n}"} for n in range(count))),
    )
    dataset.refresh_from_db()


def recorded_run(caller: Any, dataset: Dataset) -> EvalRun:
    return services.eval_run_create(
        caller=caller,
        dataset_id=dataset.pk,
        target=services.TargetRequest(kind="recorded", column="expected_output"),
        scorers=[services.ScorerRequest(kind="exact_match")],
    )


@pytest.fixture
def other_dataset(team_b: Any) -> Dataset:
    caller = caller_for_user(team_b.members[Role.PROMPT_ENGINEER])
    dataset = services.dataset_create(caller=caller, team_id=team_b.team.id, name="secret-faq")
    fill(dataset, caller)
    return dataset


# Datasets ---------------------------------------------------------------------------


def test_dataset_list_shows_team_name_badge_items_and_version_and_not_other_teams(
    team_a, team_b, dataset, engineer, other_dataset, page_client_for
):
    fill(dataset, engineer, 3)

    response = page_client_for(team_a.members[Role.VIEWER]).get(reverse("evaluations:datasets"))

    body = text(response)
    assert response.status_code == 200
    assert f'<a href="/evaluations/datasets/{dataset.pk}/">faq</a>' in body
    assert "<td>Team A</td>" in body
    assert '<span class="badge">internal</span>' in body
    assert "<td>3</td>" in body
    assert "<td>v2</td>" in body
    assert "secret-faq" not in body
    assert "New dataset" not in body  # a viewer is not offered the form


def test_dataset_list_empty_says_what_to_do(team_a, page_client_for):
    body = text(page_client_for(team_a.members[Role.PROMPT_ENGINEER]).get(reverse("evaluations:datasets")))

    assert "No datasets yet." in body
    assert "Create one below" in body


def test_engineer_creates_a_dataset_and_lands_on_it(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.PROMPT_ENGINEER])

    response = client.post(
        reverse("evaluations:dataset-create"),
        {"team": team_a.team.id, "name": "refunds", "classification": Clearance.INTERNAL, "description": ""},
    )

    dataset = Dataset.objects.get(name="refunds")
    assert response.status_code == 302
    assert response["Location"] == f"/evaluations/datasets/{dataset.pk}/"
    assert dataset.team_id == team_a.team.id


def test_viewer_cannot_create_a_dataset(team_a, page_client_for):
    assert_refused(
        page_client_for(team_a.members[Role.VIEWER]),
        "post",
        reverse("evaluations:dataset-create"),
        data={"team": team_a.team.id, "name": "refunds", "classification": Clearance.INTERNAL},
        status=403,
        unchanged=DATASET_ROWS,
    )


def test_dataset_create_in_another_team_is_404(team_a, team_b, page_client_for):
    client = page_client_for(team_a.members[Role.ADMIN])
    before = snapshot(*DATASET_ROWS)

    response = client.post(
        reverse("evaluations:dataset-create"),
        {"team": team_b.team.id, "name": "refunds", "classification": Clearance.INTERNAL},
    )

    assert response.status_code == 404
    assert snapshot(*DATASET_ROWS) == before


def test_dataset_create_with_an_invalid_schema_names_the_field(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.PROMPT_ENGINEER])
    before = snapshot(*DATASET_ROWS)

    response = client.post(
        reverse("evaluations:dataset-create"),
        {"team": team_a.team.id, "name": "x", "classification": Clearance.INTERNAL, "item_schema": "{not json"},
        **HTMX,
    )

    assert response.status_code == 400
    assert "item_schema: not valid JSON (line 1, column 2" in text(response)
    assert not is_full_page(response)
    assert snapshot(*DATASET_ROWS) == before


@pytest.mark.parametrize(
    ("method", "name"), [("get", "dataset"), ("get", "dataset-export"), ("post", "dataset-upload")]
)
def test_another_teams_dataset_is_404_and_nothing_changes(team_a, other_dataset, page_client_for, method, name):
    client = page_client_for(team_a.members[Role.ADMIN])

    assert_hidden(client, method, reverse(f"evaluations:{name}", args=[other_dataset.pk]), unchanged=DATASET_ROWS)


def test_dataset_detail_is_a_full_page_and_its_version_switch_an_htmx_partial(
    team_a, dataset, engineer, page_client_for
):
    fill(dataset, engineer, 2)
    client = page_client_for(team_a.members[Role.VIEWER])
    url = reverse("evaluations:dataset", args=[dataset.pk])

    page = client.get(url)
    partial = client.get(url + "?version=1", **HTMX)

    assert is_full_page(page)
    assert "question 1" in text(page)
    assert "Items at v2" in text(page)
    assert not is_full_page(partial)
    assert "Items at v1" in text(partial)
    assert "No items at v1." in text(partial)


def test_items_above_the_callers_clearance_are_shown_masked(team_a, dataset, engineer, page_client_for):
    services.dataset_items_change(
        caller=engineer,
        dataset=dataset,
        add=new_items(
            {"input": "open question", "expected_output": "fine"},
            {"input": "the merger plan", "expected_output": "sealed", "classification": "confidential"},
        ),
    )
    viewer = team_a.members[Role.VIEWER]
    viewer.memberships.filter(team=team_a.team).update(clearance=Clearance.INTERNAL)

    body = text(page_client_for(viewer).get(reverse("evaluations:dataset", args=[dataset.pk])))

    assert "open question" in body
    assert "the merger plan" not in body
    assert "sealed" not in body
    assert "Masked: classified above your clearance." in body


def test_a_bad_upload_lists_each_bad_line_and_imports_nothing(team_a, dataset, page_client_for):
    client = page_client_for(team_a.members[Role.PROMPT_ENGINEER])
    data = b'{"input": "ok"}\n{"input": \n{"expected_output": "no input"}\n'
    before = snapshot(*DATASET_ROWS)

    response = client.post(
        reverse("evaluations:dataset-upload", args=[dataset.pk]),
        {"file": SimpleUploadedFile("items.jsonl", data), "message": ""},
        **HTMX,
    )

    body = text(response)
    assert response.status_code == 400
    assert not is_full_page(response)
    assert "Nothing was imported: 2 bad lines." in body
    assert "<li>line 2: " in body
    assert "<li>line 3: " in body
    assert snapshot(*DATASET_ROWS) == before


def test_an_upload_makes_a_version_and_shows_it(team_a, dataset, page_client_for):
    client = page_client_for(team_a.members[Role.PROMPT_ENGINEER])
    data = b"input,expected_output\nWhere is my order?,It ships tomorrow.\nHi,Hello\n"

    response = client.post(
        reverse("evaluations:dataset-upload", args=[dataset.pk]),
        {"file": SimpleUploadedFile("items.csv", data)},
        **HTMX,
    )

    dataset.refresh_from_db()
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"/evaluations/datasets/{dataset.pk}/?version=2"
    assert (dataset.current_version, dataset.item_count) == (2, 2)


def test_viewer_cannot_upload(team_a, dataset, page_client_for):
    client = page_client_for(team_a.members[Role.VIEWER])
    before = snapshot(*DATASET_ROWS)

    response = client.post(
        reverse("evaluations:dataset-upload", args=[dataset.pk]),
        {"file": SimpleUploadedFile("items.jsonl", b'{"input": "x"}\n')},
    )

    assert response.status_code == 403
    assert snapshot(*DATASET_ROWS) == before


def test_export_streams_the_chosen_version_as_jsonl(team_a, dataset, engineer, page_client_for):
    fill(dataset, engineer, 2)

    response = page_client_for(team_a.members[Role.VIEWER]).get(
        reverse("evaluations:dataset-export", args=[dataset.pk]) + "?version=2"
    )

    lines = b"".join(response.streaming_content).decode().splitlines()
    assert response["Content-Type"] == "application/x-ndjson"
    assert len(lines) == 2
    assert '"expected_output":"answer 0"' in lines[0]


def test_from_calls_page_takes_posted_call_ids_and_copies_them(team_a, dataset, make_call, page_client_for):
    call = make_call(team_a)
    client = page_client_for(team_a.members[Role.PROMPT_ENGINEER])

    chooser = client.post(reverse("evaluations:dataset-from-calls"), {"call_ids": [str(call.id)]})
    copied = client.post(reverse("evaluations:dataset-from-calls"), {"call_ids": [str(call.id)], "dataset": dataset.pk})

    assert chooser.status_code == 200
    assert "Add 1 call to a dataset" in text(chooser)
    assert f'<option value="{dataset.pk}">faq' in text(chooser)
    assert copied.status_code == 302
    item = DatasetItem.objects.get(dataset=dataset)
    assert str(item.source_call_id) == str(call.id)


def test_from_calls_into_another_teams_dataset_is_404(team_a, other_dataset, make_call, page_client_for):
    call = make_call(team_a)

    assert_hidden(
        page_client_for(team_a.members[Role.ADMIN]),
        "post",
        reverse("evaluations:dataset-from-calls"),
        data={"call_ids": [str(call.id)], "dataset": other_dataset.pk},
        unchanged=DATASET_ROWS,
    )


# Scorers ----------------------------------------------------------------------------


def test_scorers_page_lists_builtins_and_the_teams_configured_scorers(team_a, engineer, page_client_for):
    services.scorer_config_create(
        caller=engineer, team_id=team_a.team.id, name="order-id", kind="regex", config={"pattern": r"\d+"}
    )

    body = text(page_client_for(team_a.members[Role.VIEWER]).get(reverse("evaluations:scorers")))

    assert '<th scope="row">Exact match</th>' in body
    assert "order-id" in body
    assert "Regular expression" in body
    assert "New scorer" not in body


def test_a_scorer_config_that_does_not_compile_is_refused_on_its_field(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.PROMPT_ENGINEER])
    before = snapshot(ScorerConfig)

    response = client.post(
        reverse("evaluations:scorer-create"),
        {"team": team_a.team.id, "name": "broken", "kind": "regex", "config": '{"pattern": "(unclosed"}'},
        **HTMX,
    )

    body = text(response)
    assert response.status_code == 400
    assert not is_full_page(response)
    assert 'id="id_config_errors"' in body
    assert "config: pattern:" in body
    assert snapshot(ScorerConfig) == before


def test_viewer_cannot_create_a_scorer(team_a, page_client_for):
    assert_refused(
        page_client_for(team_a.members[Role.VIEWER]),
        "post",
        reverse("evaluations:scorer-create"),
        data={"team": team_a.team.id, "name": "x", "kind": "contains", "config": ""},
        status=403,
        unchanged=[ScorerConfig],
    )


def test_try_a_builtin_scorer_on_one_example(team_a, page_client_for):
    response = page_client_for(team_a.members[Role.VIEWER]).post(
        reverse("evaluations:scorer-try"),
        {"scorer": "kind:exact_match", "output": "It ships tomorrow.", "expected_output": "It ships  tomorrow."},
        **HTMX,
    )

    body = text(response)
    assert response.status_code == 200
    assert not is_full_page(response)
    assert "<dd>1.000 (pass)</dd>" in body


def test_try_reports_a_scorer_that_cannot_score(team_a, page_client_for):
    response = page_client_for(team_a.members[Role.VIEWER]).post(
        reverse("evaluations:scorer-try"), {"scorer": "kind:exact_match", "output": "x"}, **HTMX
    )

    assert response.status_code == 200
    assert "could not score this example" in text(response)


# Runs -------------------------------------------------------------------------------


def test_engineer_starts_a_recorded_output_run_and_lands_on_it(team_a, dataset, engineer, page_client_for):
    fill(dataset, engineer, 2)
    client = page_client_for(team_a.members[Role.PROMPT_ENGINEER])

    response = client.post(
        reverse("evaluations:run-create"),
        {
            "dataset": dataset.pk,
            "target_kind": "recorded",
            "column": "expected_output",
            "scorers": ["kind:exact_match", "kind:contains"],
            "repeats": 1,
        },
    )

    run = EvalRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/evaluations/runs/{run.pk}/"
    assert [entry["name"] for entry in run.scorers] == ["exact_match", "contains"]
    assert run.dataset_version == 2


def test_viewer_cannot_run(team_a, dataset, engineer, page_client_for):
    fill(dataset, engineer, 2)

    assert_refused(
        page_client_for(team_a.members[Role.VIEWER]),
        "post",
        reverse("evaluations:run-create"),
        data={"dataset": dataset.pk, "target_kind": "recorded", "scorers": ["kind:exact_match"], "repeats": 1},
        status=403,
        unchanged=RUN_ROWS,
    )


def test_a_run_on_an_empty_dataset_is_refused_with_the_reason(team_a, dataset, page_client_for):
    response = assert_refused(
        page_client_for(team_a.members[Role.PROMPT_ENGINEER]),
        "post",
        reverse("evaluations:run-create"),
        data={"dataset": dataset.pk, "target_kind": "recorded", "scorers": ["kind:exact_match"], "repeats": 1},
        status=400,
        unchanged=RUN_ROWS,
    )

    assert "has no items; add items first." in text(response)


def test_a_run_on_another_teams_dataset_is_404(team_a, other_dataset, page_client_for):
    assert_hidden(
        page_client_for(team_a.members[Role.ADMIN]),
        "post",
        reverse("evaluations:run-create"),
        data={"dataset": other_dataset.pk, "target_kind": "recorded", "scorers": ["kind:exact_match"], "repeats": 1},
        unchanged=RUN_ROWS,
    )


@pytest.mark.parametrize(
    ("method", "name"), [("get", "run"), ("get", "run-live"), ("post", "run-cancel"), ("post", "run-retry")]
)
def test_another_teams_run_is_404_and_nothing_changes(team_a, team_b, other_dataset, page_client_for, method, name):
    run = recorded_run(caller_for_user(team_b.members[Role.PROMPT_ENGINEER]), other_dataset)

    assert_hidden(
        page_client_for(team_a.members[Role.ADMIN]),
        method,
        reverse(f"evaluations:{name}", args=[run.pk]),
        unchanged=RUN_ROWS,
    )


def test_run_list_shows_status_dataset_version_target_and_progress(team_a, dataset, engineer, page_client_for):
    fill(dataset, engineer, 2)
    run = recorded_run(engineer, dataset)

    body = text(page_client_for(team_a.members[Role.VIEWER]).get(reverse("evaluations:runs")))

    assert f'href="/evaluations/runs/{run.pk}/"' in body
    assert '<span class="badge status-queued">Queued</span>' in body
    assert "faq@v2" in body
    assert "recorded output (expected_output)" in body
    assert "0 / 2" in body
    assert "Start a run" not in body


def test_a_queued_run_polls_every_two_seconds_and_a_finished_one_stops(team_a, dataset, engineer, page_client_for):
    fill(dataset, engineer, 2)
    run = recorded_run(engineer, dataset)
    client = page_client_for(team_a.members[Role.VIEWER])
    url = reverse("evaluations:run", args=[run.pk])

    queued_page = client.get(url)
    EvalRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED)
    finished_partial = client.get(url, **HTMX)

    assert is_full_page(queued_page)
    assert f'hx-get="/evaluations/runs/{run.pk}/live/" hx-trigger="every 2s"' in text(queued_page)
    assert "Cancel the run" not in text(queued_page)  # a viewer reads only
    assert not is_full_page(finished_partial)
    assert "hx-trigger" not in text(finished_partial)


def test_viewer_cannot_cancel_a_run(team_a, dataset, engineer, page_client_for):
    fill(dataset, engineer, 2)
    run = recorded_run(engineer, dataset)

    assert_refused(
        page_client_for(team_a.members[Role.VIEWER]),
        "post",
        reverse("evaluations:run-cancel", args=[run.pk]),
        status=403,
        unchanged=RUN_ROWS,
    )


def test_engineer_cancels_a_queued_run(team_a, dataset, engineer, page_client_for):
    fill(dataset, engineer, 2)
    run = recorded_run(engineer, dataset)

    response = page_client_for(team_a.members[Role.PROMPT_ENGINEER]).post(
        reverse("evaluations:run-cancel", args=[run.pk]), **HTMX
    )

    run.refresh_from_db()
    assert response.status_code == 200
    assert run.status == RunStatus.CANCELLED
    assert '<span class="badge status-cancelled" id="run-status">Cancelled</span>' in text(response)


def test_retrying_a_run_with_nothing_failed_is_a_409_shown_in_the_section(team_a, dataset, engineer, page_client_for):
    fill(dataset, engineer, 2)
    run = recorded_run(engineer, dataset)
    EvalRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED)

    response = assert_refused(
        page_client_for(team_a.members[Role.PROMPT_ENGINEER]),
        "post",
        reverse("evaluations:run-retry", args=[run.pk]),
        status=409,
        unchanged=RUN_ROWS,
    )

    assert "has no failed items to retry" in text(response)


# Compare ----------------------------------------------------------------------------


def completed_run(caller: Any, dataset: Dataset, column: str) -> EvalRun:
    """A recorded-output run executed here, without a worker (start, then its one chunk)."""
    run = services.eval_run_create(
        caller=caller,
        dataset_id=dataset.pk,
        target=services.TargetRequest(kind="recorded", column=column),
        scorers=[services.ScorerRequest(kind="exact_match")],
    )
    runs.eval_run_start(run_id=run.pk)
    execution.chunk_execute(run_id=run.pk, chunk=0)
    runs.eval_run_settle(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    return run


@pytest.mark.django_db(transaction=True)  # the chunk's scorers write from another thread's connection
def test_compare_shows_the_verdict_regressions_side_by_side_and_a_histogram(team_a, dataset, engineer, page_client_for):
    services.dataset_items_change(
        caller=engineer,
        dataset=dataset,
        add=new_items(
            *(
                {"input": f"q{n}", "expected_output": f"a{n}", "metadata": {"old": f"a{n}" if n % 2 else "wrong"}}
                for n in range(4)
            )
        ),
    )
    baseline = completed_run(engineer, dataset, "expected_output")
    candidate = completed_run(engineer, dataset, "metadata.old")
    client = page_client_for(team_a.members[Role.VIEWER])
    url = reverse("evaluations:compare") + f"?run={baseline.pk}&run={candidate.pk}"

    page = client.get(url)
    partial = client.get(url, **HTMX)

    body = text(page)
    assert page.status_code == 200
    assert '<th scope="row">exact_match</th>' in body
    assert "no detectable difference with 4 items" in body
    assert 'Regressions <span class="muted">(2 shown)</span>' in body
    assert "<td>q0</td>" in body  # the item named by its question
    assert "<td>a0</td>" in body  # the baseline's answer beside the candidate's
    assert "<td>wrong</td>" in body
    assert 'data-plotly-figure="histogram-0"' in body
    assert not is_full_page(partial)
    assert "Regressions" in text(partial)


def test_compare_across_dataset_versions_is_refused_with_the_reason(team_a, dataset, engineer, page_client_for):
    fill(dataset, engineer, 2)
    first = recorded_run(engineer, dataset)
    fill(dataset, engineer, 1)
    second = recorded_run(engineer, dataset)

    response = page_client_for(team_a.members[Role.VIEWER]).get(
        reverse("evaluations:compare") + f"?run={first.pk}&run={second.pk}"
    )

    assert response.status_code == 400
    assert "only runs on the same dataset version can be compared" in text(response)


def test_compare_with_another_teams_run_is_404(team_a, team_b, dataset, engineer, other_dataset, page_client_for):
    fill(dataset, engineer, 2)
    mine = recorded_run(engineer, dataset)
    theirs = recorded_run(caller_for_user(team_b.members[Role.PROMPT_ENGINEER]), other_dataset)

    assert_hidden(
        page_client_for(team_a.members[Role.ADMIN]),
        "get",
        reverse("evaluations:compare") + f"?run={mine.pk}&run={theirs.pk}",
        unchanged=RUN_ROWS,
    )


# Gates ------------------------------------------------------------------------------

GATE_ROWS = (EvaluationGate,)


@pytest.fixture
def prompt(team_a: Any) -> Any:
    return prompt_services.prompt_create(
        caller=caller_for_user(team_a.members[Role.ADMIN]), team=team_a.team, name="support-answer"
    )


def gate_body(prompt: Any, dataset: Dataset, **fields: Any) -> dict[str, Any]:
    return {
        "prompt": prompt.pk,
        "label": "production",
        "dataset": dataset.pk,
        "scorers": ["kind:exact_match"],
        "min_score": "0.8",
        "requires_no_regression": "on",
        **fields,
    }


def test_admin_sets_a_gate_and_sees_it_with_no_verdict_yet(team_a, prompt, dataset, engineer, page_client_for):
    fill(dataset, engineer, 2)
    client = page_client_for(team_a.members[Role.ADMIN])

    response = client.post(reverse("evaluations:gate-create"), gate_body(prompt, dataset))
    page = text(client.get(reverse("evaluations:gates")))

    gate = EvaluationGate.objects.get()
    assert response.status_code == 302
    assert (gate.label, gate.dataset_id, gate.requires_no_regression) == ("production", dataset.pk, True)
    assert [(entry["name"], entry["min_score"]) for entry in gate.scorers] == [("exact_match", 0.8)]
    assert "support-answer</a> → production" in page
    assert "exact_match ≥ 0.80" in page
    assert "not checked yet" in page


@pytest.mark.parametrize(
    ("role", "overrides", "status", "message"),
    [
        (Role.PROMPT_ENGINEER, {}, 403, None),  # only admins set gates
        (Role.ADMIN, {"label": "staging"}, 400, "is not a protected label of"),
    ],
)
def test_a_refused_gate_creates_nothing(
    team_a, prompt, dataset, engineer, page_client_for, role, overrides, status, message
):
    fill(dataset, engineer, 2)

    response = assert_refused(
        page_client_for(team_a.members[role]),
        "post",
        reverse("evaluations:gate-create"),
        data=gate_body(prompt, dataset, **overrides),
        status=status,
        unchanged=GATE_ROWS,
    )

    if message is not None:
        assert message in text(response)


def test_the_gates_page_offers_no_gate_form_to_engineers(team_a, prompt, dataset, engineer, page_client_for):
    fill(dataset, engineer, 2)

    page = text(page_client_for(team_a.members[Role.PROMPT_ENGINEER]).get(reverse("evaluations:gates")))

    assert "Set a gate" not in page


def test_a_gate_on_another_teams_prompt_is_404(team_a, team_b, dataset, engineer, page_client_for):
    fill(dataset, engineer, 2)
    theirs = prompt_services.prompt_create(
        caller=caller_for_user(team_b.members[Role.ADMIN]), team=team_b.team, name="their-prompt"
    )

    assert_hidden(
        page_client_for(team_a.members[Role.ADMIN]),
        "post",
        reverse("evaluations:gate-create"),
        data=gate_body(theirs, dataset),
        unchanged=GATE_ROWS,
    )
