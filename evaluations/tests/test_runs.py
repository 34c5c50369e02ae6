"""Eval runs through a real Celery worker, the gateway in the worker's process, and a fake
provider over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from costs.services import budget_create, price_set
from evaluations import execution, services
from evaluations.models import EvalResult, EvalRun, EvalScore
from evaluations.tests.conftest import new_items
from evaluations.types import ResultStatus, RunStatus
from gateway.tests.conftest import (
    live_gateway,  # noqa: F401 - the live gateway's fixture
    model_for,
    provider_for,
)
from gateway.tests.fake_upstream import FakeUpstream, fail, reply
from observability.models import Call
from observability.recorder import recorder
from prompts.services import label_move, prompt_create, prompt_version_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=["upstream-model"], default=reply("Paris")) as fake:
        yield fake


@pytest.fixture
def served_model(upstream: FakeUpstream) -> Any:
    # No gateway-side retries: the eval worker's own backoff is what is tested.
    return model_for(provider_for(upstream, max_retries=0), name="fake-model")


def filled(dataset: Any, engineer: Any, count: int) -> None:
    services.dataset_items_change(
        caller=engineer,
        dataset=dataset,
        add=new_items(
            *(
                {
                    "input": {"messages": [{"role": "user", "content": f"Capital of France? ({n})"}]},
                    "expected_output": "Paris",
                }
                for n in range(count)
            )
        ),
    )


def wait_for(run: EvalRun, statuses: set[str], timeout: float = 60) -> EvalRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in statuses:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run.pk} is {run.status} ({run.done_count} done, {run.failed_count} failed)")


def model_run(engineer: Any, dataset: Any, **options: Any) -> EvalRun:
    return services.eval_run_create(
        caller=engineer,
        dataset_id=dataset.pk,
        target=services.TargetRequest(kind="model", model="fake-model"),
        scorers=[
            services.ScorerRequest(kind="exact_match"),
            services.ScorerRequest(kind="contains", config={"values": ["Par"]}),
        ],
        **options,
    )


def test_a_run_completes_and_every_item_is_scored_exactly_once(
    celery_worker, served_model, upstream, dataset, engineer
):
    filled(dataset, engineer, 30)

    run = wait_for(model_run(engineer, dataset, repeats=2), {RunStatus.COMPLETED})

    assert (run.total_count, run.done_count, run.failed_count) == (60, 60, 0)
    assert EvalResult.objects.filter(run=run, status=ResultStatus.DONE).count() == 60
    assert EvalScore.objects.filter(result__run=run).count() == 120
    assert set(EvalScore.objects.filter(result__run=run).values_list("value", flat=True)) == {1.0}
    assert len(upstream.chat_requests()) == 60
    result = EvalResult.objects.filter(run=run).order_by("id")[0]
    assert result.output == "Paris"
    assert result.input_tokens
    # Recorded by the gateway like any application's call, under the team's eval application.
    recorder().flush()
    call_ids = set(EvalResult.objects.filter(run=run).values_list("call_id", flat=True))
    calls = Call.objects.filter(id__in=call_ids)
    assert calls.count() == 60
    assert run.key is not None
    assert set(calls.values_list("application_id", flat=True)) == {run.key.application_id}


def test_a_provider_answering_429_then_200_completes_after_backoff(
    celery_worker, served_model, upstream, dataset, engineer
):
    filled(dataset, engineer, 3)
    upstream.enqueue(fail(429, retry_after=0.2), fail(429, retry_after=0.2))

    run = wait_for(model_run(engineer, dataset), {RunStatus.COMPLETED})

    assert (run.done_count, run.failed_count) == (3, 0)
    assert len(upstream.chat_requests()) == 5


def test_a_budget_refusal_fails_the_items_with_the_message(
    celery_worker, served_model, upstream, dataset, engineer, team_a
):
    filled(dataset, engineer, 2)
    price_set(
        caller=None,
        model="fake-model",
        input_per_million=Decimal("1000"),
        output_per_million=Decimal("2000"),
        effective_from=timezone.now() - timedelta(days=1),
    )
    budget_create(
        caller=None, team=team_a.team, name="cap", scope="team", period="total", amount_usd=Decimal("0.000001")
    )

    run = wait_for(model_run(engineer, dataset), {RunStatus.COMPLETED})

    assert (run.done_count, run.failed_count) == (0, 2)
    errors = set(EvalResult.objects.filter(run=run).values_list("error", flat=True))
    assert all("budget" in error.lower() for error in errors), errors
    assert upstream.chat_requests() == []


def test_recorded_outputs_are_scored_without_calling_anything(celery_worker, upstream, dataset, engineer):
    filled(dataset, engineer, 4)

    run = services.eval_run_create(
        caller=engineer,
        dataset_id=dataset.pk,
        target=services.TargetRequest(kind="recorded", column="expected_output"),
        scorers=[services.ScorerRequest(kind="exact_match")],
    )
    run = wait_for(run, {RunStatus.COMPLETED})

    assert run.done_count == 4
    assert run.key_id is None
    assert upstream.chat_requests() == []


def test_a_prompt_target_and_an_llm_judge_go_through_the_gateway(
    celery_worker, served_model, upstream, dataset, engineer, team_a
):
    services.dataset_items_change(
        caller=engineer,
        dataset=dataset,
        add=new_items({"input": {"variables": {"city": "France"}}, "expected_output": "Paris"}),
    )
    answerer = prompt_create(caller=None, team=team_a.team, name="capital")
    version, _ = prompt_version_create(
        caller=None, prompt=answerer, messages=[{"role": "user", "content": "Capital of {{ city }}?"}]
    )
    label_move(caller=None, prompt=answerer, label="production", version=version)
    judge = prompt_create(caller=None, team=team_a.team, name="judge")
    prompt_version_create(
        caller=None,
        prompt=judge,
        messages=[{"role": "user", "content": "Rubric: {{ rubric }}\nQ: {{ input }}\nA: {{ output }}"}],
    )
    # The target answers; then the judge answers garbage once (asked again) and twice in JSON.
    upstream.enqueue(
        reply("Paris"),
        reply("I think it is fine"),
        reply('{"score": 1, "reason": "correct"}'),
        reply('```json\n{"score": 0.5, "reason": "terse"}\n```'),
    )

    run = services.eval_run_create(
        caller=engineer,
        dataset_id=dataset.pk,
        target=services.TargetRequest(kind="prompt", prompt="capital", label="production", model="fake-model"),
        scorers=[
            services.ScorerRequest(
                kind="llm_judge",
                config={"prompt": "judge", "version": 1, "model": "fake-model", "rubric": "Be strict", "repeats": 2},
                name="judge",
            )
        ],
    )
    run = wait_for(run, {RunStatus.COMPLETED})

    assert run.target["version"] == 1
    (score,) = EvalScore.objects.filter(result__run=run)
    assert score.value == pytest.approx(0.75), score.error
    assert score.spread == pytest.approx(0.5)
    assert score.details["samples"] == [1.0, 0.5]
    requests = upstream.chat_requests()
    assert requests[0].body["messages"][-1]["content"] == "Capital of France?"
    assert "Rubric: Be strict" in requests[1].body["messages"][0]["content"]
    assert len(requests) == 4


def test_a_judge_that_never_answers_in_the_schema_is_an_error_not_a_zero(
    celery_worker, served_model, upstream, dataset, engineer, team_a
):
    filled(dataset, engineer, 1)
    judge = prompt_create(caller=None, team=team_a.team, name="judge")
    prompt_version_create(caller=None, prompt=judge, messages=[{"role": "user", "content": "{{ output }}"}])
    upstream.enqueue(reply("Paris"), reply("nope"), reply('{"score": 3, "reason": "x"}'))

    run = services.eval_run_create(
        caller=engineer,
        dataset_id=dataset.pk,
        target=services.TargetRequest(kind="model", model="fake-model"),
        scorers=[
            services.ScorerRequest(
                kind="llm_judge",
                config={"prompt": "judge", "label": "latest", "model": "fake-model", "max_attempts": 2},
            )
        ],
    )
    run = wait_for(run, {RunStatus.COMPLETED})

    (score,) = EvalScore.objects.filter(result__run=run)
    assert score.value is None
    assert "broke the output schema" in score.error
    assert "score must be a number in [0, 1]" in score.error


def test_cancel_stops_a_run_within_seconds(celery_worker, served_model, upstream, dataset, engineer):
    filled(dataset, engineer, 60)
    upstream.default = reply("Paris", delay_seconds=0.3)
    run = model_run(engineer, dataset)
    deadline = time.monotonic() + 30
    while EvalResult.objects.filter(run=run, status=ResultStatus.DONE).count() < 5:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    cancelled_at = time.monotonic()
    services.eval_run_cancel(caller=engineer, run=run)
    run = wait_for(run, {RunStatus.CANCELLED}, timeout=10)

    assert time.monotonic() - cancelled_at < 5
    # A worker reads the run's status at most every CANCEL_CHECK_SECONDS: an item it took up
    # within that window may still start its call; after it, no call starts.
    time.sleep(execution.CANCEL_CHECK_SECONDS + 0.5)
    calls_after_window = len(upstream.chat_requests())
    time.sleep(1)
    assert len(upstream.chat_requests()) == calls_after_window
    run.refresh_from_db()
    assert 0 < run.done_count < 60
    assert EvalResult.objects.filter(run=run, status=ResultStatus.PENDING).count() == 60 - run.done_count


def test_retry_failed_runs_only_the_failed_items(celery_worker, served_model, upstream, dataset, engineer):
    filled(dataset, engineer, 4)
    upstream.enqueue(fail(400, message="bad"), reply("Paris"), reply("Paris"), reply("Paris"))
    run = wait_for(model_run(engineer, dataset), {RunStatus.COMPLETED})
    assert (run.done_count, run.failed_count) == (3, 1)
    (failed,) = EvalResult.objects.filter(run=run, status=ResultStatus.FAILED)
    assert "bad" in failed.error
    calls_before = len(upstream.chat_requests())

    retried = services.eval_run_retry_failed(caller=engineer, run=run)
    run = wait_for(run, {RunStatus.COMPLETED})

    assert retried == 1
    assert (run.done_count, run.failed_count) == (4, 0)
    assert len(upstream.chat_requests()) == calls_before + 1
    assert EvalScore.objects.filter(result__run=run).count() == 8


def test_over_http_when_eval_gateway_url_is_set(
    celery_worker,
    live_gateway,  # noqa: F811 - the imported fixture
    served_model,
    upstream,
    dataset,
    engineer,
    settings,
):
    settings.EVAL_GATEWAY_URL = live_gateway
    filled(dataset, engineer, 3)

    run = wait_for(model_run(engineer, dataset), {RunStatus.COMPLETED})

    assert (run.done_count, run.failed_count) == (3, 0)
    assert len(upstream.chat_requests()) == 3
