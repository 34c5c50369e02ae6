"""Reads of cache settings, entries, statistics and shadow hits, scoped to the caller.

Entries made under a clearance above the viewer's, or holding content classified above it,
are listed with their content masked; so are the calls of the shadow-hit review.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Q, QuerySet

from accounts import roles
from accounts import selectors as account_selectors
from accounts.caller import Caller
from core.classification import Clearance
from gateway.semantic_cache.models import CacheEntry, ShadowReview
from gateway.semantic_cache.services import DEFAULT_CONFIG, CacheConfig, config_load
from observability.selectors import call_cache_counts, call_latest_shadow_hits, call_view

if TYPE_CHECKING:
    from accounts.models import Application


def application_for_cache(*, caller: Caller, application_id: int | str) -> Application:
    """The application (404 outside the caller's teams) if the caller may see its cache."""
    application = account_selectors.application_get(caller=caller, application_id=application_id)
    caller.require_permission(roles.VIEW_CACHE, team_id=application.team_id, action="view this application's cache")
    return application


@dataclass(frozen=True)
class SettingsView:
    application_id: int
    mode: str
    threshold: float
    ttl_seconds: int
    max_entries: int
    cache_nonzero_temperature: bool


def settings_get(*, application: Application) -> SettingsView:
    config: CacheConfig = config_load(application.id) if application.id else DEFAULT_CONFIG
    return SettingsView(
        application_id=application.id,
        mode=config.mode,
        threshold=config.threshold,
        ttl_seconds=config.ttl_seconds,
        max_entries=config.max_entries,
        cache_nonzero_temperature=config.cache_nonzero_temperature,
    )


def entry_list(*, application: Application) -> QuerySet[CacheEntry]:
    return CacheEntry.objects.filter(application=application).defer("embedding").order_by("-id")


@dataclass(frozen=True)
class EntryView:
    entry: CacheEntry
    is_masked: bool
    query_text: str
    answer_text: str


def entry_view(*, caller: Caller, entry: CacheEntry) -> EntryView:
    """The entry as the caller may see it: masked when it was made under a clearance above the
    caller's or holds content classified above it."""
    viewer_clearance = caller.clearance_in(entry.team_id)
    if entry.clearance > viewer_clearance:
        label = Clearance(entry.clearance).label
        masked = f"[hidden: made under {label} clearance]"
        return EntryView(entry=entry, is_masked=True, query_text=masked, answer_text=masked)
    if entry.classification > viewer_clearance:
        masked = f"[masked: above your clearance ({Clearance(entry.classification).label})]"
        return EntryView(entry=entry, is_masked=True, query_text=masked, answer_text=masked)
    return EntryView(entry=entry, is_masked=False, query_text=entry.query_text, answer_text=entry.answer_text)


@dataclass(frozen=True)
class CacheStats:
    calls: int
    hits: int
    shadow_hits: int
    saved_usd: Decimal
    entries: int
    reviewed: int
    reviewed_correct: int

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.calls if self.calls else None

    @property
    def shadow_precision(self) -> float | None:
        return self.reviewed_correct / self.reviewed if self.reviewed else None


def cache_stats(*, application: Application) -> CacheStats:
    calls = call_cache_counts(team_id=application.team_id, application_id=application.id)
    reviews = ShadowReview.objects.filter(application=application).aggregate(
        reviewed=Count("id"), correct=Count("id", filter=Q(is_correct=True))
    )
    return CacheStats(
        calls=calls["calls"],
        hits=calls["hits"],
        shadow_hits=calls["shadow_hits"],
        saved_usd=calls["saved"] or Decimal(0),
        entries=CacheEntry.objects.filter(application=application).count(),
        reviewed=reviews["reviewed"],
        reviewed_correct=reviews["correct"],
    )


@dataclass(frozen=True)
class ShadowHitView:
    call_id: str
    created_at: Any
    question: str
    live_answer: str
    cached_answer: str
    entry_id: str
    similarity: float | None
    review: ShadowReview | None


def shadow_hits(*, caller: Caller, application: Application, limit: int = 50) -> list[ShadowHitView]:
    """The latest shadow hits: the live answer next to the cached one, with any verdict."""
    calls = call_latest_shadow_hits(team_id=application.team_id, application_id=application.id, limit=limit)
    entries = {
        str(entry.id): entry
        for entry in CacheEntry.objects.filter(
            id__in=[call.cache_entry_id for call in calls if call.cache_entry_id]
        ).defer("embedding")
    }
    reviews = {
        review.call_id: review for review in ShadowReview.objects.filter(call_id__in=[call.id for call in calls])
    }
    views = []
    for call in calls:
        redacted = call_view(caller=caller, call=call)
        entry = entries.get(call.cache_entry_id)
        cached = entry_view(caller=caller, entry=entry).answer_text if entry is not None else "[entry no longer cached]"
        question = ""
        for message in reversed(redacted.request_messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                question = content if isinstance(content, str) else str(content)
                break
        views.append(
            ShadowHitView(
                call_id=str(call.id),
                created_at=call.created_at,
                question=question,
                live_answer=redacted.response_text,
                cached_answer=cached,
                entry_id=call.cache_entry_id,
                similarity=call.cache_similarity,
                review=reviews.get(call.id),
            )
        )
    return views
