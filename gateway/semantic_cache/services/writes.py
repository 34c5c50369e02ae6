"""Fills and usage counts, written off the request path by one background thread per process.

`store` only enqueues; `CacheWriter` embeds (when the lookup did not), writes the entry, enforces
the application's expiry and `max_entries`, and publishes the new row to this process's index.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import Counter

from compliance.guardrails.services import message_texts, team_state, texts_level
from core import embeddings
from gateway.semantic_cache.index import IndexRow
from gateway.semantic_cache.models import CacheEntry
from gateway.semantic_cache.services.normalize import message_text, normalise_params, request_keys, temperature_allowed
from gateway.semantic_cache.services.state import CacheState, config_load, process_state
from gateway.semantic_cache.services.values import CacheScope
from gateway.semantic_cache.types import CacheMode

logger = logging.getLogger(__name__)

WRITES = Counter(
    "controlplane_semantic_cache_writes_total",
    "Semantic cache fills by outcome (written, duplicate, skipped, dropped, error).",
    ["outcome"],
)


@dataclass(frozen=True)
class StoreJob:
    scope: CacheScope
    messages: list[dict[str, Any]]
    completion: dict[str, Any]
    cost_usd: Decimal
    embedding: np.ndarray | None
    classification: int = 0  # of the prompt version and documents; the writer adds rule matches


@dataclass(frozen=True)
class UsageJob:
    entry_id: str
    is_shadow: bool


class CacheWriter:
    """Writes cache fills and usage counts on one daemon thread, off the request path.

    A fill is best effort: jobs live only in this process's memory, so a crash or restart
    loses the fills (and hit counts) still queued, and a full queue drops new ones (counted in
    `controlplane_semantic_cache_writes_total{outcome="dropped"}`). Losing a fill costs one
    future miss, never a wrong answer. With SEMANTIC_CACHE_WRITER="inline" jobs run in the
    caller's thread (tests, scripts).
    """

    def __init__(self, *, state: CacheState | None = None, inline: bool = False, queue_size: int = 10_000) -> None:
        self._state = state
        self.inline = inline
        self._queue: queue.Queue[StoreJob | UsageJob] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    @property
    def state(self) -> CacheState:
        return self._state or process_state()

    def submit(self, job: StoreJob | UsageJob) -> None:
        if self.inline:
            self._run(job)
            return
        self._ensure_thread()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            WRITES.labels(outcome="dropped").inc()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="semantic-cache-writer", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            try:
                close_old_connections()
                self._run(job)
                # Like the end of a request: honours CONN_MAX_AGE, so tests (0) see it closed.
                close_old_connections()
            finally:
                self._queue.task_done()

    def _run(self, job: StoreJob | UsageJob) -> None:
        try:
            if isinstance(job, StoreJob):
                WRITES.labels(outcome=entry_write(state=self.state, job=job)).inc()
            else:
                _usage_write(job)
        except Exception:
            logger.exception("semantic cache write failed")
            WRITES.labels(outcome="error").inc()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued job is written (tests, shutdown)."""
        if self.inline or self._thread is None:
            return
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)


_writer: CacheWriter | None = None
_writer_lock = threading.Lock()


def writer() -> CacheWriter:
    global _writer
    inline = settings.SEMANTIC_CACHE_WRITER == "inline"
    if _writer is None or _writer.inline != inline:
        with _writer_lock:
            if _writer is None or _writer.inline != inline:
                _writer = CacheWriter(inline=inline, queue_size=settings.SEMANTIC_CACHE_WRITE_QUEUE_SIZE)
    return _writer


def store(
    *,
    scope: CacheScope,
    messages: list[dict[str, Any]],
    completion: dict[str, Any],
    cost_usd: Decimal,
    embedding: np.ndarray | None = None,
    classification: int = 0,
) -> None:
    """Queue a fill (successful, complete, unflagged answers only; the gateway decides) and return.

    `classification`: the highest classification of the call's prompt version and documents;
    the writer raises it to what the team's classification rules find in the messages and the
    answer. The entry is served to callers cleared for it only.

    The caller must not mutate `messages` or `completion` afterwards: they are written later,
    on the writer thread. Never raises.
    """
    try:
        writer().submit(
            StoreJob(
                scope=scope,
                messages=messages,
                completion=completion,
                cost_usd=cost_usd,
                embedding=embedding,
                classification=classification,
            )
        )
    except Exception:
        logger.exception("semantic cache fill not queued")
        WRITES.labels(outcome="error").inc()


def entry_write(*, state: CacheState, job: StoreJob) -> str:
    """Write one fill; enforce expiry and max_entries for the application. Returns the outcome."""
    scope = job.scope
    config = config_load(scope.application_id)
    if config.mode == CacheMode.OFF or not temperature_allowed(params=scope.params, config=config):
        return "skipped"
    keys = request_keys(scope=scope, messages=job.messages)
    vector = job.embedding
    if vector is None and keys.semantic_text is not None:
        vector = embeddings.embed([keys.semantic_text])[0]
    now = timezone.now()
    with transaction.atomic():
        if CacheEntry.objects.filter(
            request_hash=keys.request_hash,
            clearance=scope.clearance,
            flagged_at__isnull=True,
            expires_at__gt=now,
        ).exists():
            return "duplicate"
        last = job.messages[-1] if job.messages else {}
        entry = CacheEntry.objects.create(
            team_id=scope.team_id,
            application_id=scope.application_id,
            prompt_version_id=scope.prompt_version_id,
            model=scope.model,
            params=normalise_params(scope.params),
            scope_hash=keys.scope_hash,
            context_hash=keys.context_hash,
            request_hash=keys.request_hash,
            clearance=scope.clearance,
            classification=_entry_classification(job),
            query_text=keys.semantic_text or message_text(last),
            embedding=np.asarray(vector, dtype=np.float32).tobytes() if vector is not None else None,
            completion=job.completion,
            cost_usd=job.cost_usd,
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(seconds=config.ttl_seconds),
        )
        _enforce_limits(application_id=scope.application_id, max_entries=config.max_entries, now=now)

        def publish() -> None:
            index = state.registry.loaded(keys.scope_hash)
            if index is not None:
                index.add_many(
                    [
                        IndexRow(
                            entry_id=str(entry.id),
                            request_hash=entry.request_hash,
                            context_hash=entry.context_hash,
                            clearance=entry.required_clearance,
                            expires_at=entry.expires_at.timestamp(),
                            created_at=entry.created_at,
                            vector=np.asarray(vector, dtype=np.float32) if vector is not None else None,
                        )
                    ]
                )

        transaction.on_commit(publish)
    return "written"


def _entry_classification(job: StoreJob) -> int:
    """The job's classification raised to the team's rule matches on its messages and answer."""
    rules = team_state(job.scope.team_id).rules
    if not rules:
        return job.classification
    answer = ""
    choices = job.completion.get("choices") or []
    # The completion is the provider's JSON as served, not typed input: its shape is checked here.
    if choices and isinstance(choices[0], dict):
        content = (choices[0].get("message") or {}).get("content")
        answer = content if isinstance(content, str) else ""
    detected = texts_level([*message_texts(job.messages), answer], rules)
    return max(job.classification, detected if detected is not None else job.classification)


def _enforce_limits(*, application_id: int, max_entries: int, now: datetime) -> None:
    CacheEntry.objects.filter(application_id=application_id, expires_at__lte=now).delete()
    live = CacheEntry.objects.filter(application_id=application_id)
    excess = live.count() - max_entries
    if excess > 0:
        # Flagged entries go first, then the least recently used.
        oldest = list(
            live.order_by(F("flagged_at").desc(nulls_last=True), "last_used_at", "id")[:excess].values_list(
                "id", flat=True
            )
        )
        CacheEntry.objects.filter(id__in=oldest).delete()


def _usage_write(job: UsageJob) -> None:
    if job.is_shadow:
        CacheEntry.objects.filter(id=job.entry_id).update(shadow_hit_count=F("shadow_hit_count") + 1)
    else:
        CacheEntry.objects.filter(id=job.entry_id).update(hit_count=F("hit_count") + 1, last_used_at=timezone.now())
