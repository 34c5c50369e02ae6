"""Value types of costs that other apps may use (the public surface beside services and selectors)."""

from __future__ import annotations

from django.db import models


class BudgetScope(models.TextChoices):
    TEAM = "team", "Team"
    APPLICATION = "application", "Application"
    API_KEY = "api_key", "API key"
    END_USER = "end_user", "End user"
    MODEL = "model", "Model"
    METADATA = "metadata", "Metadata tag"


class BudgetPeriodKind(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    TOTAL = "total", "Total"


class BudgetAction(models.TextChoices):
    BLOCK = "block", "Block"
    DOWNGRADE = "downgrade", "Downgrade"


class ReservationState(models.TextChoices):
    OPEN = "open", "Open"
    SETTLED = "settled", "Settled"
    RELEASED = "released", "Released"


class NotificationKind(models.TextChoices):
    BUDGET_THRESHOLD = "budget_threshold", "Budget threshold"
    SPEND_ANOMALY = "spend_anomaly", "Spend anomaly"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class RollupGranularity(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class RollupDimension(models.TextChoices):
    TEAM = "team", "Team"
    APPLICATION = "application", "Application"
    API_KEY = "api_key", "API key"
    MODEL = "model", "Model"
    END_USER = "end_user", "End user"
    PROMPT = "prompt", "Prompt"


class RecommendationKind(models.TextChoices):
    CHEAPER_TIER = "cheaper_tier", "Send simple calls to a cheaper model"
    ENABLE_CACHE = "enable_cache", "Enable the cache"
    CUT_CONTEXT = "cut_context", "Cut context"
