"""Evaluation gates: setting one, a label move refused with 409 and the reasons (API and
prompts-as-code sync), the override by a second person, and the CI command and endpoint giving
the same verdict. Runs are written to the database with chosen scores, except in the last tests,
where a real Celery worker runs them against a fake provider over HTTP."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import call_command

from accounts.caller import caller_for_user
from compliance.models import AuditEvent
from evaluations import services
from evaluations.models import EvalRun, GateCheck
from evaluations.services import gates
from evaluations.tests.built_runs import completed_run
from evaluations.tests.conftest import new_items
from evaluations.types import GateCheckStatus, RunStatus
from prompts.models import Prompt, PromptLabel
from prompts.services import label_move

pytestmark = pytest.mark.django_db

CAPITAL_V1 = (
    "name: capital\nmessages:\n  - role: user\n    content: 'Capital of {{ city }}?'\nparams:\n  model: fake-model\n"
)
CAPITAL_V2 = CAPITAL_V1.replace("Capital of", "Name the capital of")


def label_url(team):
    return f"/api/v1/prompts/capital/labels/production/?team={team.id}"


@pytest.fixture
def world(team_a, dataset, engineer, tmp_path):
    """capital v1 on production (moved before the gate), v2 the candidate; 20 items; a gate."""
    (tmp_path / "capital.yaml").write_text(CAPITAL_V1)
    call_command("prompts_sync", str(tmp_path), "--team", "Team A", stdout=StringIO())
    prompt = Prompt.objects.get(team=team_a.team, name="capital")
    v1 = prompt.versions.get(number=1)
    label_move(caller=None, prompt=prompt, label="production", version=v1)
    (tmp_path / "capital.yaml").write_text(CAPITAL_V2)
    call_command("prompts_sync", str(tmp_path), "--team", "Team A", stdout=StringIO())
    v2 = prompt.versions.get(number=2)
    services.dataset_items_change(
        caller=engineer,
        dataset=dataset,
        add=new_items(
            *({"input": {"variables": {"city": f"city {n}"}}, "expected_output": "Paris"} for n in range(20))
        ),
    )
    dataset.refresh_from_db()
    gate = gates.gate_create(
        caller=caller_for_user(team_a.members["admin"]),
        prompt=prompt,
        label="production",
        dataset_id=dataset.pk,
        scorers=[gates.GateScorerRequest(kind="exact_match", min_score=0.5)],
    )
    return {"prompt": prompt, "v1": v1, "v2": v2, "gate": gate, "dirs": tmp_path, "dataset": dataset}


def on_label(prompt):
    return PromptLabel.objects.get(prompt=prompt, name="production").version.number


@pytest.mark.parametrize(
    ("member", "label", "error", "match"),
    [
        ("prompt_engineer", "production", gates.PermissionDenied, None),  # only admins set gates
        ("admin", "staging", gates.ValidationFailed, "'staging' is not a protected label"),
    ],
)
def test_only_admins_set_gates_and_only_on_protected_labels(world, team_a, dataset, member, label, error, match):
    with pytest.raises(error, match=match):
        gates.gate_create(
            caller=caller_for_user(team_a.members[member]),
            prompt=world["prompt"],
            label=label,
            dataset_id=dataset.pk,
            scorers=[gates.GateScorerRequest(kind="exact_match")],
        )


def test_a_failing_gate_refuses_the_api_label_move_with_409_and_the_reasons(world, client_for, team_a):
    completed_run(world["dataset"], [1.0] * 20, version=world["v1"])
    completed_run(world["dataset"], [1.0] * 6 + [0.0] * 14, version=world["v2"])

    response = client_for(team_a.members["manager"]).put(
        label_url(team_a.team), {"version": 2, "reason": "ship it"}, format="json"
    )

    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert error["code"] == "evaluation_gate_failed"
    assert "exact_match: mean 0.300 is below the minimum 0.500" in error["message"]
    assert "version 2 is worse than version 1: mean difference -0.700" in error["message"]
    assert "McNemar p = " in error["message"]
    assert on_label(world["prompt"]) == 1
    check = GateCheck.objects.get()
    assert (check.status, check.requested_by, check.source) == (
        GateCheckStatus.FAILED,
        team_a.members["manager"],
        "label_move",
    )


def test_a_passing_gate_lets_the_label_move(world, client_for, team_a):
    completed_run(world["dataset"], [1.0] * 15 + [0.0] * 5, version=world["v1"])
    completed_run(world["dataset"], [1.0] * 16 + [0.0] * 4, version=world["v2"])

    response = client_for(team_a.members["manager"]).put(label_url(team_a.team), {"version": 2}, format="json")

    assert response.status_code == 200, response.json()
    assert on_label(world["prompt"]) == 2
    assert GateCheck.objects.get().status == GateCheckStatus.PASSED


def test_a_failing_gate_refuses_the_move_of_prompts_sync(world):
    completed_run(world["dataset"], [1.0] * 20, version=world["v1"])
    completed_run(world["dataset"], [0.0] * 20, version=world["v2"])
    err = StringIO()

    with pytest.raises(Exception, match="refused version 2") as raised:
        call_command(
            "prompts_sync",
            str(world["dirs"]),
            "--team",
            "Team A",
            "--label",
            "production",
            stdout=StringIO(),
            stderr=err,
        )

    assert "exact_match: mean 0.000 is below the minimum 0.500" in str(raised.value)
    assert "Nothing was written" in str(raised.value)
    assert on_label(world["prompt"]) == 1


def test_a_second_person_overrides_with_a_reason_and_it_is_audited(world, client_for, team_a):
    completed_run(world["dataset"], [1.0] * 20, version=world["v1"])
    completed_run(world["dataset"], [0.0] * 20, version=world["v2"])
    client_for(team_a.members["manager"]).put(label_url(team_a.team), {"version": 2}, format="json")
    check = GateCheck.objects.get()
    url = f"/api/v1/evaluation-gates/checks/{check.pk}/override/"

    same_person = client_for(team_a.members["manager"]).post(url, {"reason": "I am sure"}, format="json")
    no_deploy = client_for(team_a.members["prompt_engineer"]).post(url, {"reason": "trust me"}, format="json")

    assert same_person.status_code == 403
    assert "second person" in same_person.json()["error"]["message"]
    assert no_deploy.status_code == 403
    assert on_label(world["prompt"]) == 1
    assert not AuditEvent.objects.filter(action="evaluation_gate.override").exists()

    response = client_for(team_a.members["admin"]).post(url, {"reason": "Hotfix: legal wording"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "overridden"
    assert on_label(world["prompt"]) == 2
    event = AuditEvent.objects.get(action="evaluation_gate.override")
    assert event.after is not None
    assert event.after["reason"] == "Hotfix: legal wording"
    assert event.after["requested_by"] == f"user {team_a.members['manager'].get_username()}"


def run_gate_command(*args):
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("eval_gate", *args, stdout=out, stderr=err)
    return exited.value.code, out.getvalue(), err.getvalue()


def test_the_command_and_the_endpoint_give_the_same_failing_verdict(world, client_for, team_a, tmp_path):
    completed_run(world["dataset"], [1.0] * 20, version=world["v1"])
    completed_run(world["dataset"], [1.0] * 4 + [0.0] * 16, version=world["v2"])
    report = tmp_path / "report.md"

    code, out, _ = run_gate_command(
        "--prompt",
        "capital",
        "--candidate",
        "2",
        "--against",
        "production",
        "--team",
        "Team A",
        "--report",
        str(report),
    )
    response = client_for(team_a.members["prompt_engineer"]).post(
        "/api/v1/evaluations/gate/",
        {"prompt": "capital", "candidate": 2, "against": "production", "team": team_a.team.id},
        format="json",
    )

    assert code == 1
    markdown = report.read_text()
    assert markdown == out
    assert markdown.startswith("## Evaluation gate: ❌ failed")
    assert "| exact_match | 0.500 | 0.200 | 1.000 | -0.800 (" in markdown
    assert "### Worst regressions" in markdown
    assert "answer" not in markdown  # no item text in a pull-request comment
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["passed"]) == ("failed", False)
    assert body["reasons"] == GateCheck.objects.filter(source="ci").latest("id").reasons
    assert body["scorers"][0]["verdict"] == "worse"
    assert len(body["worst_regressions"]) == 10


def test_the_command_exits_0_when_the_gate_passes_and_2_on_errors(world):
    completed_run(world["dataset"], [1.0] * 20, version=world["v1"])
    completed_run(world["dataset"], [1.0] * 20, version=world["v2"])

    passed = run_gate_command("--prompt", "capital", "--candidate", "2", "--against", "production", "--team", "Team A")
    no_gate = run_gate_command("--prompt", "capital", "--candidate", "2", "--against", "staging", "--team", "Team A")
    no_prompt = run_gate_command("--prompt", "nope", "--candidate", "2", "--against", "production", "--team", "Team A")
    wrong_dataset = run_gate_command(
        "--prompt", "capital", "--candidate", "2", "--against", "production", "--team", "Team A", "--dataset", "other"
    )

    assert passed[0] == 0
    assert "✅ passed" in passed[1]
    assert no_gate[0] == 2
    assert "no active evaluation gate on 'staging'" in no_gate[2]
    assert no_prompt[0] == 2
    assert wrong_dataset[0] == 2
    assert "not 'other'" in wrong_dataset[2]


# Through the real worker ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_without_finished_runs_the_move_answers_pending_and_starts_them_then_passes(
    celery_worker, world, client_for, team_a
):
    from gateway.tests.conftest import model_for, provider_for
    from gateway.tests.fake_upstream import FakeUpstream, reply

    with FakeUpstream(models=["upstream-model"], default=reply("Paris")) as upstream:
        model_for(provider_for(upstream, max_retries=0), name="fake-model")
        client = client_for(team_a.members["manager"])

        started = time.monotonic()
        first = client.put(label_url(team_a.team), {"version": 2}, format="json")
        answered_in = time.monotonic() - started

        assert first.status_code == 409, first.json()
        assert first.json()["error"]["code"] == "evaluation_gate_pending"
        assert "started gate runs" in first.json()["error"]["message"]
        assert answered_in < 10
        assert on_label(world["prompt"]) == 1
        runs = list(EvalRun.objects.filter(name__startswith=f"gate {world['gate'].pk}:"))
        assert sorted(run.target["version"] for run in runs) == [1, 2]
        deadline = time.monotonic() + 60
        while EvalRun.objects.filter(pk__in=[run.pk for run in runs], status=RunStatus.COMPLETED).count() < 2:
            assert time.monotonic() < deadline, "the gate runs did not finish"
            time.sleep(0.2)

        second = client.put(label_url(team_a.team), {"version": 2}, format="json")

    assert second.status_code == 200, second.json()
    assert on_label(world["prompt"]) == 2
    assert EvalRun.objects.count() == 2  # reused, not run again
