"""Value types of compliance that other apps may use (the public surface beside services and selectors)."""

from __future__ import annotations

from django.db import models


class ActorType(models.TextChoices):
    USER = "user", "User"
    API_KEY = "api_key", "API key"
    SYSTEM = "system", "System"
    ANONYMOUS = "anonymous", "Anonymous"


class ExportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ExportFormat(models.TextChoices):
    JSONL = "jsonl", "JSON lines"
    CSV = "csv", "CSV"
