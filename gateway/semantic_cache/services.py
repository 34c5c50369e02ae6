"""The semantic cache: lookups and fills for the gateway, and the writes behind the API and UI.

Hot path (`lookup`, `store`) contract, for the gateway:
- `lookup` never raises: a failing backend (database, shared cache, embedding) is logged,
  counted in `controlplane_semantic_cache_lookups_total{result="error"}` and reported as a miss.
- Mode "off" costs one shared-cache read (the application's generation token) and a dict
  lookup: settings are cached per process and reloaded when the token changes.
- A hit is served only if it is the same scope (application, prompt version, model,
  normalised parameters), the same conversation before the last message, an exact or
  similar (>= threshold) last user message, made under a clearance at most the caller's,
  not expired and not flagged. Candidates come from an in-process index (index.py) and are
  re-read from the database before they are returned, so a purged, flagged or expired entry
  is never served whatever the index holds.
- `store` only enqueues; a background thread embeds and writes (see `CacheWriter`).

Temperature: a request without `temperature` runs at the provider's default, which is 1.0
for OpenAI-compatible APIs, so it counts as nonzero. Such requests are looked up and stored
only when the application sets `cache_nonzero_temperature`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import Counter

from accounts import roles
from accounts.caller import Caller
from accounts.models import Application
from core.errors import NotFound, ValidationFailed
from core.generation_cache import generation_bump_key, generation_token
from gateway.semantic_cache.guard import compatible
from gateway.semantic_cache.index import IndexRegistry, IndexRow
from gateway.semantic_cache.models import CacheEntry, CacheMode, CacheSettings, ShadowReview

logger = logging.getLogger(__name__)

LOOKUPS = Counter(
    "controlplane_semantic_cache_lookups_total",
    "Semantic cache lookups by result (off, skipped, miss, exact, semantic, shadow_exact, shadow_semantic, error).",
    ["result"],
)
WRITES = Counter(
    "controlplane_semantic_cache_writes_total",
    "Semantic cache fills by outcome (written, duplicate, skipped, dropped, error).",
    ["outcome"],
)

# Request parameters that do not change the answer's content.
_IGNORED_PARAMS = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier"})
_KEPT_MESSAGE_FIELDS = ("role", "name", "content", "tool_calls", "tool_call_id", "function_call")
_GENERATION_PREFIX = "semantic_cache:generation:"
DEFAULT_TEMPERATURE = 1.0  # OpenAI's default when a request does not set one


# Interface for the gateway ------------------------------------------------------


@dataclass(frozen=True)
class CacheScope:
    application_id: int
    team_id: int
    prompt_version_id: int | None
    model: str
    clearance: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CacheHit:
    entry_id: str
    similarity: float  # 1.0 for an exact match
    kind: str  # "exact" | "semantic"
    completion: dict[str, Any]
    cost_saved_usd: Decimal


@dataclass(frozen=True)
class CacheLookup:
    mode: str  # off | shadow | on
    hit: CacheHit | None = None
    embedding: np.ndarray | None = None


@dataclass(frozen=True)
class CacheConfig:
    mode: str
    threshold: float
    ttl_seconds: int
    max_entries: int
    cache_nonzero_temperature: bool


DEFAULT_CONFIG = CacheConfig(
    mode=CacheMode.OFF,
    threshold=CacheSettings._meta.get_field("threshold").default,
    ttl_seconds=CacheSettings._meta.get_field("ttl_seconds").default,
    max_entries=CacheSettings._meta.get_field("max_entries").default,
    cache_nonzero_temperature=False,
)


# Normalisation --------------------------------------------------------------------


def normalise_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters that change the answer: None values and transport-only keys dropped, keys sorted."""
    return {key: params[key] for key in sorted(params) if params[key] is not None and key not in _IGNORED_PARAMS}


def normalise_text(text: str) -> str:
    return " ".join(text.lower().split())


def _normalise_content(content: Any) -> Any:
    if isinstance(content, str):
        return normalise_text(content)
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append({"type": "text", "text": normalise_text(part["text"])})
            else:
                parts.append(part)
        return parts
    return content


def _normalise_message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    normalised = {key: message[key] for key in _KEPT_MESSAGE_FIELDS if message.get(key) is not None}
    if "content" in normalised:
        normalised["content"] = _normalise_content(normalised["content"])
    return normalised


def _sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return " ".join(content.split())
    if isinstance(content, list):
        texts = [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
        return " ".join(" ".join(texts).split())
    return ""


@dataclass(frozen=True)
class RequestKeys:
    scope_hash: str
    context_hash: str
    request_hash: str
    semantic_text: str | None  # the last user message; None: exact match only


def request_keys(*, scope: CacheScope, messages: list[dict[str, Any]]) -> RequestKeys:
    params = normalise_params(scope.params)
    scope_hash = _sha256(
        {
            "application": scope.application_id,
            "prompt_version": scope.prompt_version_id,
            "model": scope.model,
            "params": params,
        }
    )
    normalised = [_normalise_message(message) for message in messages]
    context_hash = _sha256({"scope": scope_hash, "messages": normalised[:-1]})
    request_hash = _sha256({"scope": scope_hash, "messages": normalised})
    last = messages[-1] if messages else None
    semantic_text = None
    if isinstance(last, dict) and last.get("role") == "user" and not last.get("tool_calls"):
        semantic_text = _message_text(last) or None
    return RequestKeys(
        scope_hash=scope_hash, context_hash=context_hash, request_hash=request_hash, semantic_text=semantic_text
    )


def temperature_allowed(*, params: dict[str, Any], config: CacheConfig) -> bool:
    if config.cache_nonzero_temperature:
        return True
    temperature = params.get("temperature")
    try:
        value = float(temperature) if temperature is not None else DEFAULT_TEMPERATURE
    except (TypeError, ValueError):
        return False
    return value <= 0


# Per-process state: settings and indexes, invalidated by a generation token ---------------


def _generation_key(application_id: int) -> str:
    return f"{_GENERATION_PREFIX}{application_id}"


def generation(application_id: int) -> str:
    return generation_token(_generation_key(application_id))


def generation_bump(application_id: int) -> None:
    """Every process reloads this application's settings and indexes: now and again on commit
    (another process could reload between the first write and the commit)."""

    generation_bump_key(_generation_key(application_id))


def _index_rows(*, scope_hash: str, since: datetime | None, known: Container[str] = ()) -> list[IndexRow]:
    now = timezone.now()
    queryset = CacheEntry.objects.filter(scope_hash=scope_hash, flagged_at__isnull=True, expires_at__gt=now)
    if since is not None:
        # A sync: read the ids first and the embeddings of the new rows only.
        recent = queryset.filter(created_at__gte=since).values_list("id", flat=True)
        new_ids = [entry_id for entry_id in recent if str(entry_id) not in known]
        if not new_ids:
            return []
        queryset = queryset.filter(id__in=new_ids)
    return [
        IndexRow(
            entry_id=str(entry_id),
            request_hash=request_hash,
            context_hash=context_hash,
            clearance=max(clearance, classification),  # the clearance a caller needs to be served it
            expires_at=expires_at.timestamp(),
            created_at=created_at,
            vector=np.frombuffer(bytes(embedding), dtype=np.float32) if embedding is not None else None,
        )
        for (
            entry_id,
            request_hash,
            context_hash,
            clearance,
            classification,
            expires_at,
            created_at,
            embedding,
        ) in queryset.values_list(
            "id", "request_hash", "context_hash", "clearance", "classification", "expires_at", "created_at", "embedding"
        ).iterator(chunk_size=2_000)
    ]


class CacheState:
    """One process's view: cached settings per application and the scope indexes."""

    def __init__(self, *, sync_seconds: float | None = None) -> None:
        self.registry = IndexRegistry(
            load=_index_rows,
            sync_seconds=sync_seconds if sync_seconds is not None else settings.SEMANTIC_CACHE_SYNC_SECONDS,
        )
        self._configs: dict[int, tuple[str, CacheConfig]] = {}

    def config(self, application_id: int) -> tuple[str, CacheConfig]:
        token = generation(application_id)  # read before the database: never cache old under new
        cached = self._configs.get(application_id)
        if cached is not None and cached[0] == token:
            return token, cached[1]
        config = config_load(application_id)
        if len(self._configs) >= 100_000:
            self._configs.clear()
        self._configs[application_id] = (token, config)
        return token, config

    def clear(self) -> None:
        self._configs.clear()
        self.registry.clear()


def config_load(application_id: int) -> CacheConfig:
    row = CacheSettings.objects.filter(application_id=application_id).first()
    if row is None:
        return DEFAULT_CONFIG
    return CacheConfig(
        mode=row.mode,
        threshold=row.threshold,
        ttl_seconds=row.ttl_seconds,
        max_entries=row.max_entries,
        cache_nonzero_temperature=row.cache_nonzero_temperature,
    )


_state: CacheState | None = None
_state_lock = threading.Lock()


def process_state() -> CacheState:
    global _state
    if _state is None:
        with _state_lock:
            if _state is None:
                _state = CacheState()
    return _state


def forget_all() -> None:
    """Drop this process's cached settings and indexes (tests; the database is untouched)."""
    if _state is not None:
        _state.clear()


# Lookup -----------------------------------------------------------------------------


def lookup(*, scope: CacheScope, messages: list[dict[str, Any]]) -> CacheLookup:
    """The entry to serve (mode "on") or to record as a shadow hit (mode "shadow"), if any."""
    return lookup_in(state=process_state(), scope=scope, messages=messages)


def lookup_in(*, state: CacheState, scope: CacheScope, messages: list[dict[str, Any]]) -> CacheLookup:
    try:
        token, config = state.config(scope.application_id)
    except Exception:
        logger.exception("semantic cache settings unavailable; treated as a miss")
        LOOKUPS.labels(result="error").inc()
        return CacheLookup(mode=CacheMode.OFF)
    if config.mode == CacheMode.OFF:
        LOOKUPS.labels(result="off").inc()
        return CacheLookup(mode=CacheMode.OFF)
    embedding: np.ndarray | None = None
    try:
        if not temperature_allowed(params=scope.params, config=config):
            LOOKUPS.labels(result="skipped").inc()
            return CacheLookup(mode=config.mode)
        keys = request_keys(scope=scope, messages=messages)
        index = state.registry.scope(scope_hash=keys.scope_hash, generation=token)
        now = time.time()
        exact = index.exact(request_hash=keys.request_hash, clearance=scope.clearance, now=now)
        hit = _verified(state, scope=scope, keys=keys, candidates=[(entry_id, 1.0) for entry_id in exact])
        if hit is None and keys.semantic_text is not None:
            from core.embeddings import embed

            embedding = embed([keys.semantic_text])[0]
            candidates = index.search(
                vector=embedding,
                context_hash=keys.context_hash,
                clearance=scope.clearance,
                threshold=config.threshold,
                now=now,
            )
            hit = _verified(state, scope=scope, keys=keys, candidates=candidates)
    except Exception:
        logger.exception(
            "semantic cache lookup failed; treated as a miss", extra={"application_id": scope.application_id}
        )
        LOOKUPS.labels(result="error").inc()
        return CacheLookup(mode=config.mode, embedding=embedding)
    if hit is None:
        LOOKUPS.labels(result="miss").inc()
        return CacheLookup(mode=config.mode, embedding=embedding)
    is_shadow = config.mode == CacheMode.SHADOW
    LOOKUPS.labels(result=f"shadow_{hit.kind}" if is_shadow else hit.kind).inc()
    writer().submit(_UsageJob(entry_id=hit.entry_id, is_shadow=is_shadow))
    return CacheLookup(mode=config.mode, hit=hit, embedding=embedding)


def _verified(
    state: CacheState, *, scope: CacheScope, keys: RequestKeys, candidates: list[tuple[str, float]]
) -> CacheHit | None:
    """The best candidate the database still holds as servable to this caller."""
    if not candidates:
        return None
    rows = {
        str(row["id"]): row
        for row in CacheEntry.objects.filter(
            id__in=[entry_id for entry_id, _ in candidates],
            scope_hash=keys.scope_hash,
            application_id=scope.application_id,
            clearance__lte=scope.clearance,
            classification__lte=scope.clearance,
            flagged_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).values("id", "completion", "cost_usd", "request_hash", "query_text")
    }
    for entry_id, similarity in candidates:
        row = rows.get(entry_id)
        if row is None:
            state.registry.remove(entry_id)
            continue
        is_exact = row["request_hash"] == keys.request_hash
        if not is_exact and not compatible(keys.semantic_text or "", row["query_text"]):
            continue
        return CacheHit(
            entry_id=entry_id,
            similarity=1.0 if is_exact else similarity,
            kind="exact" if is_exact else "semantic",
            completion=row["completion"],
            cost_saved_usd=row["cost_usd"],
        )
    return None


# Store: a background writer ---------------------------------------------------------


@dataclass(frozen=True)
class _StoreJob:
    scope: CacheScope
    messages: list[dict[str, Any]]
    completion: dict[str, Any]
    cost_usd: Decimal
    embedding: np.ndarray | None
    classification: int = 0  # of the prompt version and documents; the writer adds rule matches


@dataclass(frozen=True)
class _UsageJob:
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
        self._queue: queue.Queue[_StoreJob | _UsageJob] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    @property
    def state(self) -> CacheState:
        return self._state or process_state()

    def submit(self, job: _StoreJob | _UsageJob) -> None:
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

    def _run(self, job: _StoreJob | _UsageJob) -> None:
        try:
            if isinstance(job, _StoreJob):
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


def writer() -> CacheWriter:
    global _writer
    inline = settings.SEMANTIC_CACHE_WRITER == "inline"
    if _writer is None or _writer.inline != inline:
        with _state_lock:
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
            _StoreJob(
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


def entry_write(*, state: CacheState, job: _StoreJob) -> str:
    """Write one fill; enforce expiry and max_entries for the application. Returns the outcome."""
    scope = job.scope
    config = config_load(scope.application_id)
    if config.mode == CacheMode.OFF or not temperature_allowed(params=scope.params, config=config):
        return "skipped"
    keys = request_keys(scope=scope, messages=job.messages)
    vector = job.embedding
    if vector is None and keys.semantic_text is not None:
        from core.embeddings import embed

        vector = embed([keys.semantic_text])[0]
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
            query_text=keys.semantic_text or _message_text(last),
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


def _entry_classification(job: _StoreJob) -> int:
    """The job's classification raised to the team's rule matches on its messages and answer."""
    from compliance.guardrails import classification
    from compliance.guardrails.services import team_state

    rules = team_state(job.scope.team_id).rules
    if not rules:
        return job.classification
    answer = ""
    choices = job.completion.get("choices") or []
    if choices and isinstance(choices[0], dict):
        content = (choices[0].get("message") or {}).get("content")
        answer = content if isinstance(content, str) else ""
    detected = classification.texts_level([*classification.message_texts(job.messages), answer], rules)
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


def _usage_write(job: _UsageJob) -> None:
    if job.is_shadow:
        CacheEntry.objects.filter(id=job.entry_id).update(shadow_hit_count=F("shadow_hit_count") + 1)
    else:
        CacheEntry.objects.filter(id=job.entry_id).update(hit_count=F("hit_count") + 1, last_used_at=timezone.now())


# Invalidation -----------------------------------------------------------------------


def _parse_entry_id(entry_id: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(str(entry_id)))
    except ValueError:
        raise ValidationFailed(f"'{entry_id}' is not a cache entry id (a UUID).", param="entry_id") from None


def entry_flag(*, entry_id: str, reason: str) -> None:
    """The entry is never served again (for a reviewer or, once feedback lands, a thumbs-down).
    Idempotent; an entry that no longer exists is left alone."""
    parsed = _parse_entry_id(entry_id)
    updated = CacheEntry.objects.filter(id=parsed, flagged_at__isnull=True).update(
        flagged_at=timezone.now(), flag_reason=reason[:2_000]
    )
    # Other processes drop it when they verify it (a lookup re-reads every candidate).
    process_state().registry.remove(parsed)
    if updated:
        logger.info("semantic cache entry flagged", extra={"entry_id": parsed, "reason": reason[:200]})


def entries_invalidate_for_prompt(*, prompt_id: int) -> int:
    """Delete the entries made with any version of the prompt (its label moved). Returns the count."""
    from prompts.models import PromptVersion

    version_ids = PromptVersion.objects.filter(prompt_id=prompt_id).values("id")
    with transaction.atomic():
        entries = CacheEntry.objects.filter(prompt_version_id__in=version_ids)
        application_ids = set(entries.values_list("application_id", flat=True).distinct())
        deleted, _ = entries.delete()
        for application_id in application_ids:
            generation_bump(application_id)
    if deleted:
        logger.info("semantic cache invalidated for prompt", extra={"prompt_id": prompt_id, "entries": deleted})
    return deleted


def entries_purge(*, caller: Caller, application: Application) -> int:
    """Delete every entry of the application. Returns the count."""
    caller.require_permission(roles.PURGE_CACHE, team_id=application.team_id, action="purge this application's cache")
    from compliance.services import audit_record

    with transaction.atomic():
        deleted, _ = CacheEntry.objects.filter(application=application).delete()
        generation_bump(application.id)
        audit_record(
            actor=caller,
            action="cache.purge",
            target_type="accounts.application",
            target_id=str(application.id),
            team_id=application.team_id,
            application_id=application.id,
            metadata={"application": application.name, "entries_deleted": deleted},
        )
    logger.info(
        "semantic cache purged", extra={"application_id": application.id, "entries": deleted, "actor": caller.label}
    )
    return deleted


# Settings ---------------------------------------------------------------------------


def _settings_audit_state(row: CacheSettings) -> dict[str, Any]:
    names = ("mode", "threshold", "ttl_seconds", "max_entries", "cache_nonzero_temperature")
    return {name: getattr(row, name) for name in names}


def cache_settings_set(
    *,
    caller: Caller,
    application: Application,
    mode: str | None = None,
    threshold: float | None = None,
    ttl_seconds: int | None = None,
    max_entries: int | None = None,
    cache_nonzero_temperature: bool | None = None,
) -> CacheSettings:
    """Change the given fields of the application's cache settings (others keep their value)."""
    caller.require_permission(
        roles.CHANGE_CACHE_SETTINGS,
        team_id=application.team_id,
        action="change this application's cache settings",
    )
    if mode is not None and mode not in CacheMode.values:
        raise ValidationFailed(f"mode must be one of {', '.join(CacheMode.values)}.", param="mode")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValidationFailed("threshold is a cosine similarity between 0 and 1, such as 0.92.", param="threshold")
    if ttl_seconds is not None and ttl_seconds < 0:
        raise ValidationFailed("ttl_seconds must be 0 or more (seconds an entry lives).", param="ttl_seconds")
    if max_entries is not None and max_entries < 1:
        raise ValidationFailed("max_entries must be at least 1.", param="max_entries")
    from compliance.services import audit_change

    with transaction.atomic():
        row, created = CacheSettings.objects.select_for_update().get_or_create(application=application)
        before = _settings_audit_state(row)
        changes = {
            "mode": mode,
            "threshold": threshold,
            "ttl_seconds": ttl_seconds,
            "max_entries": max_entries,
            "cache_nonzero_temperature": cache_nonzero_temperature,
        }
        for name, value in changes.items():
            if value is not None:
                setattr(row, name, value)
        row.save()
        generation_bump(application.id)
        audit_change(
            actor=caller,
            action="cache.settings_update",
            target_type="accounts.application",
            target_id=application.id,
            team_id=application.team_id,
            application_id=application.id,
            before=before,
            after=_settings_audit_state(row),
            metadata={"application": application.name, "first_settings": created},
        )
    logger.info(
        "semantic cache settings changed",
        extra={"application_id": application.id, "mode": row.mode, "actor": caller.label},
    )
    return row


# Shadow review ----------------------------------------------------------------------


def shadow_review_mark(
    *, caller: Caller, application: Application, call_id: Any, is_correct: bool, note: str = ""
) -> ShadowReview:
    """Record whether serving the shadow hit of `call_id` would have been right (last verdict wins)."""
    from observability.selectors import call_get

    caller.require_permission(roles.REVIEW_SHADOW_HITS, team_id=application.team_id, action="review shadow cache hits")
    call = call_get(caller=caller, call_id=call_id)
    if call.application_id != application.id or call.cache_result != "shadow_hit":
        raise NotFound(f"Application {application.id} has no shadow cache hit with call id {call.id}.", param="call_id")
    review, _ = ShadowReview.objects.update_or_create(
        call_id=call.id,
        defaults={
            "team_id": application.team_id,
            "application": application,
            "entry_id": call.cache_entry_id,
            "similarity": call.cache_similarity,
            "is_correct": is_correct,
            "note": note[:2_000],
            "reviewer": caller.user,
        },
    )
    return review
