"""GET /api/v1/eval-runs/compare/: paired statistics per scorer, item regressions and
improvements with both answers, team scoping, clearance masking, one dataset version only."""

from __future__ import annotations

import math

import pytest

from core.classification import Clearance
from evaluations import services
from evaluations.models import EvalResult
from evaluations.tests.built_runs import completed_run, item_keys
from evaluations.tests.conftest import new_items

pytestmark = pytest.mark.django_db

URL = "/api/v1/eval-runs/compare/"


def filled(dataset, engineer, count=20):
    services.dataset_items_change(
        caller=engineer,
        dataset=dataset,
        add=new_items(*({"input": {"messages": [{"role": "user", "content": f"q{n}"}]}} for n in range(count))),
    )
    dataset.refresh_from_db()
    return dataset


@pytest.fixture
def two_runs(dataset, engineer):
    filled(dataset, engineer)
    baseline = completed_run(dataset, [1.0] * 10 + [0.0] * 10, outputs=[f"old {n}" for n in range(20)])
    candidate = completed_run(dataset, [0.0] * 2 + [1.0] * 18, outputs=[f"new {n}" for n in range(20)])
    return baseline, candidate


def test_compare_gives_paired_statistics_and_item_changes_with_both_answers(client_for, team_a, two_runs, dataset):
    baseline, candidate = two_runs

    response = client_for(team_a.members["viewer"]).get(URL, {"runs": f"{baseline.pk},{candidate.pk}"})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["dataset"], body["dataset_version"]) == (dataset.pk, dataset.current_version)
    (pair,) = body["comparisons"]
    (scorer,) = pair["scorers"]
    assert scorer["items"] == 20
    assert scorer["difference"] == pytest.approx(0.4)
    assert (scorer["baseline_pass_rate"], scorer["candidate_pass_rate"]) == (0.5, 0.9)
    # b = 2 passed only before, c = 10 only after: 2 x (C(12,0) + C(12,1) + C(12,2)) / 2^12
    expected_p = 2 * sum(math.comb(12, k) for k in range(3)) / 2**12
    assert scorer["mcnemar"] == {
        "only_baseline_passed": 2,
        "only_candidate_passed": 10,
        "p_value": pytest.approx(expected_p),
    }
    assert scorer["interval"][0] > 0
    assert scorer["verdict"] == "better"
    keys = item_keys(dataset)
    assert [change["item"] for change in pair["regressions"]] == sorted(keys[:2])
    assert len(pair["improvements"]) == 10
    first = pair["regressions"][0]
    index = keys.index(first["item"])
    assert first["delta"] == -1.0
    assert first["baseline"] == {
        "run": baseline.pk,
        "result": EvalResult.objects.get(run=baseline, item_key=first["item"]).pk,
        "status": "done",
        "score": 1.0,
        "output": f"old {index}",
        "is_masked": False,
    }
    assert first["candidate"]["output"] == f"new {index}"

    side = client_for(team_a.members["viewer"]).get(first["side_by_side"])

    assert side.status_code == 200, side.json()
    assert [answer["output"] for answer in side.json()["answers"]] == [f"old {index}", f"new {index}"]
    assert side.json()["input"]["messages"][0]["role"] == "user"


def test_compare_sorts_smallest_change_first_and_filters_by_scorer(client_for, team_a, two_runs):
    baseline, candidate = two_runs

    body = (
        client_for(team_a.members["viewer"])
        .get(URL, {"runs": f"{baseline.pk},{candidate.pk}", "order": "smallest", "limit": 3, "scorer": "exact_match"})
        .json()
    )

    assert len(body["comparisons"][0]["improvements"]) == 3
    nothing = (
        client_for(team_a.members["viewer"])
        .get(URL, {"runs": f"{baseline.pk},{candidate.pk}", "scorer": "other"})
        .json()
    )
    assert nothing["comparisons"][0]["regressions"] == []


def test_an_answer_above_the_callers_clearance_is_masked(client_for, team_a, two_runs, dataset):
    baseline, candidate = two_runs
    secret_key = item_keys(dataset)[0]
    EvalResult.objects.filter(run=candidate, item_key=secret_key).update(classification=Clearance.RESTRICTED)

    body = client_for(team_a.members["viewer"]).get(URL, {"runs": f"{baseline.pk},{candidate.pk}"}).json()

    (change,) = [row for row in body["comparisons"][0]["regressions"] if row["item"] == secret_key]
    assert change["candidate"]["output"] is None
    assert change["candidate"]["is_masked"] is True
    assert change["baseline"]["output"] is not None
    side = client_for(team_a.members["viewer"]).get(change["side_by_side"]).json()
    assert side["answers"][1] == {**side["answers"][1], "output": None, "is_masked": True}


def test_another_teams_runs_are_not_found(client_for, team_b, two_runs):
    baseline, candidate = two_runs

    response = client_for(team_b.members["admin"]).get(URL, {"runs": f"{baseline.pk},{candidate.pk}"})

    assert response.status_code == 404
    assert f"No eval run with id {baseline.pk}" in response.json()["error"]["message"]


def test_runs_on_different_dataset_versions_are_refused_naming_both(client_for, team_a, dataset, engineer, two_runs):
    baseline, _ = two_runs
    old_version = dataset.current_version
    filled(dataset, engineer, 1)
    later = completed_run(dataset, [1.0] * 21)

    response = client_for(team_a.members["viewer"]).get(URL, {"runs": f"{baseline.pk},{later.pk}"})

    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert f"version {old_version}" in message
    assert f"version {dataset.current_version}" in message


def test_three_runs_compare_each_with_the_first(client_for, team_a, two_runs, dataset):
    baseline, candidate = two_runs
    third = completed_run(dataset, [1.0] * 10 + [0.0] * 10)

    body = client_for(team_a.members["viewer"]).get(URL, {"runs": f"{baseline.pk},{candidate.pk},{third.pk}"}).json()

    assert [(pair["baseline"], pair["candidate"]) for pair in body["comparisons"]] == [
        (baseline.pk, candidate.pk),
        (baseline.pk, third.pk),
    ]
    assert body["comparisons"][1]["scorers"][0]["verdict"] == "no detectable difference"
    assert body["comparisons"][1]["scorers"][0]["summary"] == "no detectable difference with 20 items"


@pytest.mark.parametrize("runs", ["", "5", "5,5", "1,x", "1,2,3,4,5,6"])
def test_a_bad_runs_parameter_is_a_400_naming_it(client_for, team_a, runs):
    response = client_for(team_a.members["viewer"]).get(URL, {"runs": runs})

    assert response.status_code == 400
    assert "runs" in response.json()["error"]["message"]
