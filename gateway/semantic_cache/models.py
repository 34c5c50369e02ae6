"""Semantic cache: per-application settings, cached answers and shadow-mode reviews.

The database is the source of truth for entries; every process keeps an in-memory vector
index per scope (see `index.py`) that follows it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from core.classification import Clearance
from core.ids import uuid7
from core.models import BaseModel
from gateway.semantic_cache.types import CacheMode

# Chosen by bench/cache_bench.py: the lowest threshold with precision >= 0.95 on
# bench/data/cache_pairs.jsonl (see bench/README.md, "Semantic cache").
DEFAULT_THRESHOLD = 0.80
DEFAULT_TTL_SECONDS = 86_400
DEFAULT_MAX_ENTRIES = 10_000
# Upper bounds of what a team may set (the columns are 32-bit): an entry lives at most a year,
# and each process holds every entry's vector in memory, so a million per application is plenty.
MAX_TTL_SECONDS = 365 * 86_400
MAX_MAX_ENTRIES = 1_000_000


class CacheSettings(BaseModel):
    """How one application uses the cache. No row means the defaults (mode off)."""

    application = models.OneToOneField(
        "accounts.Application", on_delete=models.CASCADE, related_name="semantic_cache_settings"
    )
    mode = models.CharField(max_length=16, choices=CacheMode.choices, default=CacheMode.OFF)
    threshold = models.FloatField(default=DEFAULT_THRESHOLD)
    ttl_seconds = models.PositiveIntegerField(default=DEFAULT_TTL_SECONDS)
    max_entries = models.PositiveIntegerField(default=DEFAULT_MAX_ENTRIES)
    cache_nonzero_temperature = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(threshold__gte=0) & models.Q(threshold__lte=1), name="cache_settings_threshold_0_1"
            ),
            models.CheckConstraint(condition=models.Q(max_entries__gte=1), name="cache_settings_max_entries_min_1"),
        ]

    def __str__(self) -> str:
        return f"cache settings of application {self.application_id}: {self.mode}"


class CacheEntry(models.Model):
    """One cached completion, valid only inside its scope and for callers of `clearance` or above."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    application = models.ForeignKey("accounts.Application", on_delete=models.CASCADE, related_name="+")
    prompt_version_id = models.BigIntegerField(null=True, blank=True)
    model = models.CharField(max_length=200)
    params = models.JSONField(default=dict)  # normalised: no None values, keys sorted
    # sha256 of (application, prompt version, model, params): one in-memory index per scope.
    scope_hash = models.CharField(max_length=64)
    # sha256 of the normalised messages before the last one: a semantic match needs the same
    # conversation so far (system prompt, history) and a similar last question.
    context_hash = models.CharField(max_length=64)
    request_hash = models.CharField(max_length=64)  # sha256 of scope + all normalised messages
    clearance = models.PositiveSmallIntegerField(choices=Clearance.choices)  # the clearance the answer was made under
    # The highest classification of what went into the answer (the call's prompt version,
    # documents and rule matches on question and answer): served to, and shown to, callers
    # of at least this and `clearance` only.
    classification = models.PositiveSmallIntegerField(choices=Clearance.choices, default=Clearance.PUBLIC)
    query_text = models.TextField()  # the last user message as sent (what the embedding is of)
    embedding = models.BinaryField(null=True, blank=True)  # float32 x 384, L2-normalised; None: exact only
    completion = models.JSONField()  # the OpenAI chat.completion object as served
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    hit_count = models.PositiveIntegerField(default=0)
    shadow_hit_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(db_index=True)
    last_used_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    flagged_at = models.DateTimeField(null=True, blank=True)
    flag_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["scope_hash", "created_at"], name="cache_entry_scope_time"),
            models.Index(fields=["request_hash"], name="cache_entry_request"),
            models.Index(fields=["application", "last_used_at"], name="cache_entry_app_used"),
            models.Index(fields=["application", "expires_at"], name="cache_entry_app_expiry"),
            models.Index(fields=["prompt_version_id"], name="cache_entry_prompt_version"),
        ]

    def __str__(self) -> str:
        return f"cache entry {self.id} ({self.model})"

    @property
    def is_flagged(self) -> bool:
        return self.flagged_at is not None

    @property
    def required_clearance(self) -> int:
        """The clearance a caller needs to be served or shown this entry."""
        return max(self.clearance, self.classification)

    @property
    def answer_text(self) -> str:
        choices = self.completion.get("choices") if isinstance(self.completion, dict) else None
        if not choices:
            return ""
        message = choices[0].get("message") or {}
        content = message.get("content")
        return content if isinstance(content, str) else ""


class ShadowReview(BaseModel):
    """A reviewer's verdict on one shadow hit: would serving the cached answer have been right?"""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    application = models.ForeignKey("accounts.Application", on_delete=models.CASCADE, related_name="+")
    call_id = models.UUIDField(unique=True)  # observability.Call with cache_result "shadow_hit"
    entry_id = models.CharField(max_length=64)
    similarity = models.FloatField(null=True, blank=True)
    is_correct = models.BooleanField()
    note = models.TextField(blank=True, default="")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["application", "-created_at"], name="shadow_review_app_time")]

    def __str__(self) -> str:
        return f"shadow review of call {self.call_id}: {'right' if self.is_correct else 'wrong'}"
