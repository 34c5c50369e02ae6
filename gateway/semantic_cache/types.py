"""Value types of gateway.semantic_cache that other apps may use (the public surface beside services and selectors)."""

from __future__ import annotations

from django.db import models


class CacheMode(models.TextChoices):
    OFF = "off", "Off"
    SHADOW = "shadow", "Shadow (look up and record, never serve)"
    ON = "on", "On"
