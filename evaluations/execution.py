"""Running one chunk of an eval run: claim pending results, call the target through the
gateway, score, store each result once.

Exactly once: a worker claims a few pending results at a time (a lease: a token and a time,
taken with SELECT ... FOR UPDATE SKIP LOCKED so two workers never claim the same row) and
stores each answer with an update conditional on `status = pending AND lease_token = <its
token>`, the scores and the run's counters in the same transaction. A worker killed mid-chunk
leaves leases that expire (EVAL_LEASE_SECONDS); the next claim, or the beat's
`eval_runs_resume`, hands those results to another worker. A late answer from a worker whose
lease was taken over is dropped (its update matches no row), so no result is stored twice.

Concurrency: CHUNK_CONCURRENCY calls in flight per chunk task, and at most the run's
`max_concurrency` per (team, model) across all workers (evaluations.concurrency). 429s and
5xx are retried with backoff honouring Retry-After (evaluations.gateway_client); a budget
refusal fails the item with the gateway's message.

Cancel: the run's status is read at most every CANCEL_CHECK_SECONDS between items; a
cancelled run's unstarted claims are released and the chunk stops.

One event loop per worker process (`_loop`), reused by every chunk: the gateway, run in this
process, keeps its provider connection pools per event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.db import work_cycle
from evaluations import limits
from evaluations.concurrency import slot
from evaluations.gateway_client import CallFailed, Completion, GatewayClient
from evaluations.models import DatasetItem, EvalResult, EvalRun, EvalScore
from evaluations.scorers import registry
from evaluations.scorers.base import Example, Score, Scorer, ScorerError
from evaluations.scorers.judge import JudgeCallFailed, LlmJudge
from evaluations.services.keys import eval_key_secret
from evaluations.services.runs import eval_run_fail, eval_run_settle, lease_seconds
from evaluations.services.scorers import scorer_for_config
from evaluations.types import ResultStatus, RunStatus, ScorerKind, TargetKind

logger = logging.getLogger(__name__)

CHUNK_CONCURRENCY = 8
CANCEL_CHECK_SECONDS = 1.0


@dataclass
class Plan:
    run_id: int
    team_id: int
    target_kind: str
    target: dict[str, Any]
    scorers: list[tuple[int, str, Scorer]]
    secret: str | None
    max_concurrency: int


@dataclass
class Claimed:
    result_id: int
    item_key: uuid.UUID
    repeat: int
    item: DatasetItem


@dataclass
class Outcome:
    result_id: int
    status: str
    output: str | None = None
    error: str = ""
    completion: Completion | None = None
    scores: list[dict[str, Any]] = field(default_factory=list)


class ItemProblem(Exception):
    """The item cannot be run against this target (its input does not fit)."""


# Loading ------------------------------------------------------------------------------


def _scorer(run: EvalRun, entry: dict[str, Any]) -> Scorer:
    if entry["kind"] == ScorerKind.BRAND_COMPLIANCE:
        return scorer_for_config(team_id=run.team_id, kind=entry["kind"], config=entry["config"])
    return registry.build_scorer(entry["kind"], entry["config"])


def plan_load(run_id: int) -> Plan | None:
    run = EvalRun.objects.select_related("key").filter(pk=run_id).first()
    if run is None or run.status != RunStatus.RUNNING:
        return None
    return Plan(
        run_id=run.pk,
        team_id=run.team_id,
        target_kind=run.target_kind,
        target=run.target,
        scorers=[(index, entry["name"], _scorer(run, entry)) for index, entry in enumerate(run.scorers)],
        secret=eval_key_secret(run.key) if run.key is not None else None,
        max_concurrency=run.max_concurrency,
    )


def _claim(*, run_id: int, chunk: int, token: uuid.UUID, limit: int) -> list[Claimed]:
    with work_cycle():
        now = timezone.now()
        stale = now - timedelta(seconds=lease_seconds())
        with transaction.atomic():
            ids = list(
                EvalResult.objects.select_for_update(skip_locked=True)
                .filter(run_id=run_id, chunk=chunk, status=ResultStatus.PENDING)
                .filter(Q(lease_token__isnull=True) | Q(leased_at__lt=stale))
                .order_by("id")
                .values_list("id", flat=True)[:limit]
            )
            if not ids:
                return []
            EvalResult.objects.filter(id__in=ids).update(lease_token=token, leased_at=now, attempts=F("attempts") + 1)
        rows = list(EvalResult.objects.filter(id__in=ids).values("id", "item_id", "item_key", "repeat"))
        items = DatasetItem.objects.in_bulk([row["item_id"] for row in rows])
        return [
            Claimed(result_id=row["id"], item_key=row["item_key"], repeat=row["repeat"], item=items[row["item_id"]])
            for row in rows
        ]


def _release(*, result_ids: list[int], token: uuid.UUID) -> None:
    with work_cycle():
        EvalResult.objects.filter(id__in=result_ids, lease_token=token, status=ResultStatus.PENDING).update(
            lease_token=None, leased_at=None
        )


def _status(run_id: int) -> str:
    with work_cycle():
        return str(EvalRun.objects.filter(pk=run_id).values_list("status", flat=True).first() or "")


# Storing ------------------------------------------------------------------------------


def _store(*, run_id: int, outcome: Outcome, token: uuid.UUID) -> bool:
    """Write one result, once; False when another worker's claim replaced ours."""
    completion = outcome.completion
    cost = (completion.cost_usd if completion else None) or Decimal(0)
    for score in outcome.scores:
        cost += Decimal(score.get("cost_usd") or 0)
    now = timezone.now()
    with work_cycle(), transaction.atomic():
        updated = EvalResult.objects.filter(
            pk=outcome.result_id, status=ResultStatus.PENDING, lease_token=token
        ).update(
            status=outcome.status,
            output=outcome.output[: limits.MAX_OUTPUT_STORED_CHARS] if outcome.output is not None else None,
            error=outcome.error[:2000],
            call_id=completion.call_id if completion else "",
            model=(completion.model if completion else "")[:256],
            latency_ms=completion.latency_ms if completion else None,
            input_tokens=completion.input_tokens if completion else None,
            output_tokens=completion.output_tokens if completion else None,
            cost_usd=completion.cost_usd if completion else None,
            finished_at=now,
            lease_token=None,
            leased_at=None,
        )
        if not updated:
            return False
        EvalScore.objects.bulk_create([EvalScore(result_id=outcome.result_id, **score) for score in outcome.scores])
        counter = "done_count" if outcome.status == ResultStatus.DONE else "failed_count"
        EvalRun.objects.filter(pk=run_id).update(
            **{counter: F(counter) + 1}, cost_usd=F("cost_usd") + cost, heartbeat_at=now
        )
    return True


def _score_row(index: int, name: str, scorer: Scorer, result: Score | ScorerError) -> dict[str, Any]:
    if isinstance(result, ScorerError):
        return {"scorer_index": index, "scorer_name": name, "scorer_version": scorer.version, "error": result.message}
    details = dict(result.details)
    return {
        "scorer_index": index,
        "scorer_name": name,
        "scorer_version": result.scorer_version,
        "value": result.value,
        "passed": result.passed,
        "label": (result.label or None) and result.label[:200],
        "explanation": result.explanation[:4000],
        "details": details,
        "spread": details.get("spread") if isinstance(scorer, LlmJudge) else None,
        "cost_usd": Decimal(details["cost_usd"]) if isinstance(scorer, LlmJudge) and details.get("cost_usd") else None,
    }


def _score_sync(plan: Plan, example: Example) -> list[dict[str, Any]]:
    rows = []
    for index, name, scorer in plan.scorers:
        if isinstance(scorer, LlmJudge):
            continue
        (result,) = scorer.score_batch([example])
        rows.append(_score_row(index, name, scorer, result))
    return rows


# One item -----------------------------------------------------------------------------


def _body(plan: Plan, claimed: Claimed) -> dict[str, Any]:
    item = claimed.item
    raw_input = item.input if isinstance(item.input, dict) else {}
    messages = raw_input.get("messages") or []
    variables = raw_input.get("variables") or {}
    target = plan.target
    body: dict[str, Any] = {
        **target.get("params", {}),
        "model": target["model"],
        "metadata": {"eval_run": str(plan.run_id), "eval_item": str(claimed.item_key)},
    }
    if plan.target_kind == TargetKind.PROMPT:
        body["prompt"] = {"name": target["prompt"], "version": target["version"], "variables": variables}
        body["messages"] = messages
        if item.context:
            body["documents"] = [
                {"id": str(document.get("id") or index), "text": str(document.get("text", ""))}
                for index, document in enumerate(item.context, 1)
                if isinstance(document, dict)
            ]
        return body
    if not messages:
        raise ItemProblem("The item has no messages; a model target sends the item's messages as they are.")
    body["messages"] = messages
    return body


def _recorded_output(plan: Plan, item: DatasetItem) -> str:
    column = plan.target["column"]
    if column == "expected_output":
        value = item.expected_output
    else:
        value = (item.metadata or {}).get(column.removeprefix("metadata."))
    if value is None:
        raise ItemProblem(f"The item has no {column} to score.")
    return value if isinstance(value, str) else str(value)


class Worker:
    """The calls and scoring of one chunk, on the process's event loop."""

    def __init__(self, plan: Plan, token: uuid.UUID) -> None:
        self.plan = plan
        self.token = token
        self.client = GatewayClient(secret=plan.secret) if plan.secret else None
        self.local = asyncio.Semaphore(CHUNK_CONCURRENCY)
        self.stopped = False
        self._checked_at = 0.0
        for _, _, scorer in plan.scorers:
            if isinstance(scorer, LlmJudge):
                scorer.bind(self._judge_call)

    async def should_stop(self) -> bool:
        if not self.stopped and time.monotonic() - self._checked_at >= CANCEL_CHECK_SECONDS:
            self._checked_at = time.monotonic()
            self.stopped = await asyncio.to_thread(_status, self.plan.run_id) != RunStatus.RUNNING
        return self.stopped

    async def _call(self, body: dict[str, Any]) -> Completion:
        assert self.client is not None
        async with slot(f"{self.plan.team_id}:{body['model']}", self.plan.max_concurrency):
            return await self.client.complete_with_retries(body, should_stop=lambda: self.stopped)

    async def _judge_call(self, body: dict[str, Any]) -> Completion:
        try:
            return await self._call(body)
        except CallFailed as failure:
            raise JudgeCallFailed(failure.message) from None

    async def run_item(self, claimed: Claimed) -> Outcome | None:
        async with self.local:
            if await self.should_stop():
                return None
            outcome = Outcome(result_id=claimed.result_id, status=ResultStatus.DONE)
            try:
                if self.plan.target_kind == TargetKind.RECORDED:
                    outcome.output = _recorded_output(self.plan, claimed.item)
                else:
                    outcome.completion = await self._call(_body(self.plan, claimed))
                    outcome.output = outcome.completion.text
            except ItemProblem as problem:
                outcome.status, outcome.error = ResultStatus.ERROR, str(problem)
            except CallFailed as failure:
                outcome.status, outcome.error = ResultStatus.FAILED, failure.message
            if outcome.status == ResultStatus.DONE:
                outcome.scores = await self._scores(claimed.item, outcome.output or "")
            return outcome

    async def _scores(self, item: DatasetItem, output: str) -> list[dict[str, Any]]:
        example = Example.build(
            input=item.input,
            output=output,
            expected=item.expected_output,
            facts=item.expected_facts or (),
            documents=[document for document in item.context or () if isinstance(document, dict)],
        )
        rows = await asyncio.to_thread(_score_sync, self.plan, example)
        for index, name, scorer in self.plan.scorers:
            if isinstance(scorer, LlmJudge):
                try:
                    result: Score | ScorerError = await scorer.ascore(example)
                except ScorerError as error:
                    result = error
                rows.append(_score_row(index, name, scorer, result))
        return sorted(rows, key=lambda row: row["scorer_index"])

    async def run_chunk(self, chunk: int) -> int:
        """CHUNK_CONCURRENCY consumers share a small queue of claimed results, each storing its
        answer as soon as it has it (a slow call holds up no other); the queue is refilled with
        a new claim when it runs dry, so a claim is never older than a few calls."""
        queue: asyncio.Queue[Claimed] = asyncio.Queue()
        refilling = asyncio.Lock()
        exhausted = False
        skipped: list[int] = []
        stored = 0

        async def consume() -> None:
            nonlocal exhausted, stored
            while True:
                async with refilling:
                    if queue.empty() and not exhausted and not await self.should_stop():
                        claimed = await asyncio.to_thread(
                            _claim, run_id=self.plan.run_id, chunk=chunk, token=self.token, limit=CHUNK_CONCURRENCY
                        )
                        exhausted = not claimed
                        for entry in claimed:
                            queue.put_nowait(entry)
                if queue.empty():
                    return
                entry = queue.get_nowait()
                outcome = await self.run_item(entry)
                if outcome is None:
                    skipped.append(entry.result_id)
                elif await asyncio.to_thread(_store, run_id=self.plan.run_id, outcome=outcome, token=self.token):
                    stored += 1

        try:
            await asyncio.gather(*(consume() for _ in range(CHUNK_CONCURRENCY)))
        finally:
            while not queue.empty():
                skipped.append(queue.get_nowait().result_id)
            if skipped:
                await asyncio.to_thread(_release, result_ids=skipped, token=self.token)
            if self.client is not None:
                await self.client.close()
        return stored


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0


def _process_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid  # one loop per process (see the module docstring); a forked child makes its own
    if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
        _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
        # Each item takes four hops to threads (slot, scoring, store, slot release): the default
        # pool (CPUs + 4 threads) would queue the chunk's consumers behind each other.
        _loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=CHUNK_CONCURRENCY * 2, thread_name_prefix="evals")
        )
    return _loop


def chunk_execute(*, run_id: int, chunk: int) -> int:
    """Run what is pending in one chunk of a run; returns the results this call stored."""
    try:
        plan = plan_load(run_id)
    except Exception as error:  # a run that cannot be planned (its key or a scorer gone) fails as a whole
        logger.exception("eval run %s cannot run", run_id)
        eval_run_fail(run_id=run_id, message=f"The run cannot be executed: {error}")
        return 0
    if plan is None:
        eval_run_settle(run_id=run_id)
        return 0
    stored = _process_loop().run_until_complete(Worker(plan, uuid.uuid4()).run_chunk(chunk))
    eval_run_settle(run_id=run_id)
    return stored
