"""Value types of accounts that other apps may use (the public surface beside services and selectors)."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MANAGER = "manager", "Manager"
    PROMPT_ENGINEER = "prompt_engineer", "Prompt engineer"
    REVIEWER = "reviewer", "Reviewer"
    COMPLIANCE_OFFICER = "compliance_officer", "Compliance officer"
    VIEWER = "viewer", "Viewer"
    # Only API keys hold this role by default: call models and prompts as an application.
    APPLICATION = "application", "Application"
