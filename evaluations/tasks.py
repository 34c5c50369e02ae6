"""Celery entry points for eval runs: take ids, call evaluations.execution or the run services.

Idempotent: a start makes no result twice, a chunk claims only pending results and stores each
once (see evaluations.execution). acks_late: a chunk whose worker died is delivered again (and
the beat's resume queues it sooner). Only database hiccups are retried here; a call's 429 or
5xx is retried inside the chunk, per item, with backoff.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from core.generation_cache import SharedCacheUnavailable
from evaluations import execution
from evaluations.services import gates, runs

_RETRYABLE = (OperationalError, InterfaceError, SharedCacheUnavailable)
# Options of every task that retries database hiccups (each adds its own time limits).
_RETRIED: dict[str, Any] = {
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": _RETRYABLE,
    "retry_backoff": True,
    "max_retries": 5,
}


@shared_task(**_RETRIED, time_limit=300, soft_time_limit=270)
def eval_run_start(run_id: int) -> None:
    runs.eval_run_start(run_id=run_id)


@shared_task(**_RETRIED, time_limit=900, soft_time_limit=840)
def eval_chunk_execute(run_id: int, chunk: int) -> int:
    return execution.chunk_execute(run_id=run_id, chunk=chunk)


@shared_task(acks_late=True, ignore_result=True, time_limit=120, soft_time_limit=100)
def eval_runs_resume(stale_after_seconds: float | None = None) -> int:
    return runs.eval_runs_resume(stale_after_seconds=stale_after_seconds)


@shared_task(**_RETRIED, time_limit=120, soft_time_limit=100)
def gate_runs_prepare(gate_id: int, version_ids: list[int]) -> list[int]:
    return gates.gate_runs_prepare(gate_id=gate_id, version_ids=version_ids)
