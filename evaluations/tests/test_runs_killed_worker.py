"""A real worker process killed with SIGKILL mid-run: a new one finishes the run, and every
item is scored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from evaluations import services
from evaluations.models import EvalResult, EvalScore
from evaluations.tests.test_runs import filled, model_run, wait_for
from evaluations.types import ResultStatus, RunStatus
from gateway.tests.conftest import model_for, provider_for
from gateway.tests.fake_upstream import FakeUpstream, reply
from gateway.tests.processes import database_url_of_test_run

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def slow_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=["upstream-model"], default=reply("Paris", delay_seconds=0.2)) as fake:
        yield fake


@contextmanager
def worker_process() -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_test_run(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings_test",
    }
    command = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "controlplane",
        "worker",
        "--pool=prefork",
        "--concurrency=2",
        "--loglevel=WARNING",
        "-n",
        f"evals-{uuid.uuid4().hex[:8]}@%h",
    ]
    process = subprocess.Popen(  # noqa: S603 - our own worker with fixed arguments
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_a_worker_killed_mid_run_loses_nothing(slow_upstream: FakeUpstream, dataset: Any, engineer: Any) -> None:
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("worker processes share the Redis broker")
    model_for(provider_for(slow_upstream, max_retries=0), name="fake-model")
    filled(dataset, engineer, 40)

    with worker_process() as first:
        run = model_run(engineer, dataset)
        deadline = time.monotonic() + 90
        while EvalResult.objects.filter(run=run, status=ResultStatus.DONE).count() < 5:
            assert time.monotonic() < deadline, "the first worker stored nothing"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its children, mid-chunk
        first.wait(timeout=10)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert run.done_count < 40

    with worker_process():
        # The beat's safety net, as it would run after the lease: claims of the dead worker released.
        services.eval_runs_resume(stale_after_seconds=0)
        run = wait_for(run, {RunStatus.COMPLETED}, timeout=120)

    assert (run.done_count, run.failed_count) == (40, 0)
    assert EvalResult.objects.filter(run=run).count() == 40
    assert EvalResult.objects.filter(run=run, status=ResultStatus.DONE).count() == 40
    assert EvalScore.objects.filter(result__run=run).count() == 80  # two scorers, once each
