"""Value types of gateway that other apps may use (the public surface beside services and selectors)."""

from __future__ import annotations

from django.db import models


class ModelTier(models.TextChoices):
    SMALL = "small", "Small"
    MEDIUM = "medium", "Medium"
    LARGE = "large", "Large"


class RoutingPolicyKind(models.TextChoices):
    FIXED = "fixed", "Fixed model"
    COMPLEXITY = "complexity", "By complexity"
    COST_CAP = "cost_cap", "Cost cap"
