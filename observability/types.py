"""Value types of observability that other apps may use (the public surface beside services and selectors)."""

from __future__ import annotations

from django.db import models


class CallStatus(models.TextChoices):
    SUCCESS = "success", "Success"
    ERROR = "error", "Error"  # the provider (or every fallback) failed
    CANCELLED = "cancelled", "Cancelled"  # the client went away mid-stream
    REFUSED = "refused", "Refused"  # refused before any model was called (guardrail, budget)


class CacheResult(models.TextChoices):
    NONE = "none", "Not looked up"
    MISS = "miss", "Miss"
    HIT = "hit", "Hit"
    SHADOW_HIT = "shadow_hit", "Shadow hit (not served)"


class CallSource(models.TextChoices):
    GATEWAY = "gateway", "Gateway"
    INGESTED = "ingested", "Ingested"
