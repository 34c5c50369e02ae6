"""Value types of compliance.guardrails that other apps may use (the public surface beside services and selectors)."""

from __future__ import annotations

from django.db import models


class PiiAction(models.TextChoices):
    ALLOW = "allow", "Allow (record findings)"
    REDACT = "redact", "Redact with typed placeholders"
    BLOCK = "block", "Block the call"


class InjectionAction(models.TextChoices):
    OFF = "off", "Off"
    FLAG = "flag", "Flag (record, call proceeds)"
    BLOCK = "block", "Block the call"


class LeakAction(models.TextChoices):
    REDACT = "redact", "Redact the reproduced text"
    BLOCK = "block", "Block the response"


class DetectorKind(models.TextChoices):
    PII_ENTITY = "pii_entity", "PII entities"
    REGEX = "regex", "Regular expression"
    KEYWORDS = "keywords", "Keyword list"
