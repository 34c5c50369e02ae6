"""The eval runs API: bad input as 4xx naming the problem with nothing created, roles, team
scoping, masking by clearance, and the summary's statistics against reference values."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import Membership
from core.classification import Clearance
from core.testing import assert_hidden, assert_refused
from evaluations import services, stats
from evaluations.models import EvalKey, EvalResult, EvalRun, EvalScore
from evaluations.tests.conftest import new_items
from evaluations.types import ResultStatus, RunStatus

WATCHED = (EvalRun, EvalResult, EvalScore, EvalKey)


@pytest.fixture
def api(client_for, team_a):
    return client_for(team_a.members["prompt_engineer"])


@pytest.fixture
def filled_dataset(dataset, engineer):
    services.dataset_items_change(
        caller=engineer,
        dataset=dataset,
        add=new_items(
            {"input": {"messages": [{"role": "user", "content": "q1"}]}, "expected_output": "a"},
            {"input": {"messages": [{"role": "user", "content": "q2"}]}, "expected_output": "b"},
        ),
    )
    return dataset


@pytest.fixture
def recorded_run(filled_dataset, engineer):
    """A queued run of the recorded outputs of `filled_dataset`, scored by exact match."""
    return services.eval_run_create(
        caller=engineer,
        dataset_id=filled_dataset.pk,
        target=services.TargetRequest(kind="recorded"),
        scorers=[services.ScorerRequest(kind="exact_match")],
    )


def body(dataset, **overrides):
    data = {
        "dataset": dataset.pk,
        "target": {"kind": "recorded", "column": "expected_output"},
        "scorers": [{"kind": "exact_match"}],
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("change", "status", "names"),
    [
        ({"target": {"kind": "prompt", "prompt": "nope", "model": "m"}}, 400, "target.prompt"),
        ({"target": {"kind": "model"}}, 400, "target.model"),
        ({"target": {"kind": "model", "model": "m", "params": {"evil": 1}}}, 400, "evil"),
        ({"target": {"kind": "recorded", "column": "output"}}, 400, "target.column"),
        ({"scorers": [{"kind": "no_such"}]}, 400, "no_such"),
        ({"scorers": [{"kind": "regex", "config": {"pattern": "("}}]}, 400, "pattern"),
        ({"scorers": [{"scorer": 999999}]}, 404, "scorer"),
        ({"scorers": []}, 400, "scorers"),
        ({"repeats": 11}, 400, "repeats"),
        ({"dataset_version": 9}, 404, "version 9"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_problem_and_creates_nothing(api, filled_dataset, change, status, names):
    response = assert_refused(
        api, "post", "/api/v1/eval-runs/", status=status, unchanged=WATCHED, data=body(filled_dataset, **change)
    )

    assert names in response.json()["error"]["message"]


def test_a_run_on_an_empty_dataset_is_refused(api, dataset):
    response = assert_refused(api, "post", "/api/v1/eval-runs/", status=400, unchanged=WATCHED, data=body(dataset))

    assert "has no items" in response.json()["error"]["message"]


def test_viewers_read_runs_but_cannot_start_cancel_or_retry(client_for, team_a, filled_dataset, recorded_run):
    run = recorded_run
    viewer = client_for(team_a.members["viewer"])

    assert viewer.get(f"/api/v1/eval-runs/{run.pk}/").status_code == 200
    for url, data in (
        ("/api/v1/eval-runs/", body(filled_dataset)),
        (f"/api/v1/eval-runs/{run.pk}/cancel/", None),
        (f"/api/v1/eval-runs/{run.pk}/retry-failed/", None),
    ):
        assert_refused(viewer, "post", url, status=403, unchanged=WATCHED, data=data)


def test_another_teams_runs_are_hidden(client_for, team_b, filled_dataset, recorded_run):
    run = recorded_run
    outsider = client_for(team_b.members["admin"])

    for method, url, data in (
        ("get", f"/api/v1/eval-runs/{run.pk}/", None),
        ("get", f"/api/v1/eval-runs/{run.pk}/results/", None),
        ("post", f"/api/v1/eval-runs/{run.pk}/cancel/", None),
        ("post", f"/api/v1/eval-runs/{run.pk}/retry-failed/", None),
        ("post", "/api/v1/eval-runs/", body(filled_dataset)),
    ):
        assert_hidden(outsider, method, url, unchanged=WATCHED, data=data)
    assert outsider.get("/api/v1/eval-runs/").json()["results"] == []


def test_results_above_the_readers_clearance_are_masked(client_for, team_a, recorded_run):
    run = recorded_run
    services.runs.eval_run_start(run_id=run.pk)  # the worker's first step, here without a broker
    EvalResult.objects.filter(run=run).update(
        status=ResultStatus.DONE, output="secret answer", classification=Clearance.CONFIDENTIAL
    )
    viewer = team_a.members["viewer"]
    Membership.objects.filter(user=viewer, team=team_a.team).update(clearance=Clearance.INTERNAL)

    masked = client_for(viewer).get(f"/api/v1/eval-runs/{run.pk}/results/").json()["results"]
    shown = client_for(team_a.members["admin"]).get(f"/api/v1/eval-runs/{run.pk}/results/").json()["results"]

    assert [result["output"] for result in masked] == [None, None]
    assert all(result["is_masked"] for result in masked)
    assert [result["output"] for result in shown] == ["secret answer", "secret answer"]


def test_the_summary_reports_mean_pass_rate_intervals_and_errors(api, filled_dataset, engineer):
    run = services.eval_run_create(
        caller=engineer,
        dataset_id=filled_dataset.pk,
        target=services.TargetRequest(kind="recorded"),
        scorers=[services.ScorerRequest(kind="exact_match")],
        repeats=3,
    )
    services.runs.eval_run_start(run_id=run.pk)
    results = list(EvalResult.objects.filter(run=run).order_by("id"))
    for result, value in zip(results, [0.2, 0.4, 0.6, 0.8, None, None], strict=True):
        EvalScore.objects.create(
            result=result,
            scorer_index=0,
            scorer_name="exact_match",
            value=value,
            passed=None if value is None else value >= 0.5,
            error="" if value is not None else "cannot score",
        )
    EvalResult.objects.filter(run=run).update(status=ResultStatus.DONE, finished_at=timezone.now())
    EvalRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED, done_count=6)

    (summary,) = api.get(f"/api/v1/eval-runs/{run.pk}/").json()["summary"]
    at_threshold = api.get(f"/api/v1/eval-runs/{run.pk}/?threshold=0.3").json()["summary"][0]

    assert summary["scored"] == 4
    assert summary["errors"] == 2
    assert summary["mean"] == pytest.approx(0.5)
    # t(0.975, 3) = 3.182446; sd = 0.258199; half-width = 3.182446 * 0.258199 / 2 = 0.410853
    assert summary["mean_ci95"] == pytest.approx([0.089147, 0.910853], abs=1e-5)
    assert summary["pass_rate"] == pytest.approx(0.5)
    assert at_threshold["pass_rate"] == pytest.approx(0.75)


def test_wilson_interval_matches_reference_values():
    # 8 of 10 at 95%: (0.4902, 0.9433) (Wilson 1927; e.g. Newcombe 1998, table I method 3)
    interval = stats.wilson_interval(8, 10)
    assert interval is not None
    assert (interval.low, interval.high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert stats.mean_interval([1.0]) is None
    assert stats.wilson_interval(0, 0) is None
