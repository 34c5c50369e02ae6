"""Prices, budgets with their per-period counters, spend rollups, alerts and recommendations.

Money that is added up in the database (budget counters, rollups) is stored as integer
"cost units" of 1e-8 USD, the resolution of `Call.cost_usd`: integer arithmetic is exact on
PostgreSQL and SQLite alike, where a SQLite decimal column would be a float.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from core.models import BaseModel
from costs.types import (
    BudgetAction,
    BudgetPeriodKind,
    BudgetScope,
    DeliveryStatus,
    NotificationKind,
    RecommendationKind,
    ReservationState,
    RollupDimension,
    RollupGranularity,
)

UNITS_PER_USD = 100_000_000  # 1 unit = 1e-8 USD, the resolution of Call.cost_usd
USD_QUANTUM = Decimal("0.00000001")


def usd_to_units(amount: Decimal) -> int:
    return int((amount * UNITS_PER_USD).to_integral_value())


def usd_text(units: int) -> str:
    """Cost units as a fixed-point USD string ("0.00000000", never "0E-8")."""
    return f"{Decimal(units).scaleb(-8):.8f}"


def units_to_usd(units: int) -> Decimal:
    # Formatted through a string so that zero reads "0.00000000", not "0E-8".
    return Decimal(f"{Decimal(units).scaleb(-8):.8f}")


class ModelPrice(models.Model):
    """The price of a catalog model from `effective_from` on, until the next row of the same model.

    A row belongs to one model of the gateway's catalog (`language_model`): a team's own
    model has its own prices, whatever its name. A row without a model is a list price by
    name (the seeded price book): it prices no call the gateway serves; a shared catalog model
    created later under that name takes over its rows (costs.pricing.list_prices_adopt).
    `is_free` says in so many words that the model costs nothing (every price zero), which is
    different from a model nobody priced: calls to that one are refused while a budget applies.
    """

    language_model = models.ForeignKey(
        "gateway.LanguageModel", null=True, blank=True, on_delete=models.CASCADE, related_name="prices"
    )
    model = models.CharField(max_length=200)  # the model's name, kept with the row for history and list prices
    input_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    output_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    cached_input_per_million = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    is_free = models.BooleanField(default=False)
    effective_from = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["language_model", "effective_from"],
                condition=models.Q(language_model__isnull=False),
                name="modelprice_unique_catalog_model_from",
            ),
            models.UniqueConstraint(
                fields=["model", "effective_from"],
                condition=models.Q(language_model__isnull=True),
                name="modelprice_unique_list_model_from",
            ),
            models.CheckConstraint(
                condition=models.Q(input_per_million__gte=0, output_per_million__gte=0),
                name="modelprice_not_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(is_free=False)
                | (
                    models.Q(input_per_million=0, output_per_million=0)
                    & (models.Q(cached_input_per_million__isnull=True) | models.Q(cached_input_per_million=0))
                ),
                name="modelprice_free_costs_zero",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} from {self.effective_from:%Y-%m-%d}"

    @property
    def cached_input_price(self) -> Decimal:
        """Cached input tokens cost the input price when the provider gives no discount."""
        return self.cached_input_per_million if self.cached_input_per_million is not None else self.input_per_million


DEFAULT_THRESHOLDS = [50, 80, 100]


def default_thresholds() -> list[int]:
    return list(DEFAULT_THRESHOLDS)


class Budget(BaseModel):
    """A spending limit on a scope, per calendar period in the team's time zone (or in total).

    `scope_value` names what the scope applies to: an application id, an API key id, an end
    user, a model name or a metadata tag `key=value`; it is empty for the team scope.
    """

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="budgets")
    name = models.CharField(max_length=200)
    scope = models.CharField(max_length=16, choices=BudgetScope.choices)
    scope_value = models.CharField(max_length=256, blank=True, default="")
    period = models.CharField(max_length=16, choices=BudgetPeriodKind.choices)
    amount_usd = models.DecimalField(max_digits=14, decimal_places=8)
    thresholds = models.JSONField(default=default_thresholds)  # percent of the amount, 1..100
    action = models.CharField(max_length=16, choices=BudgetAction.choices, default=BudgetAction.BLOCK)
    downgrade_model = models.CharField(max_length=200, blank=True, default="")
    alert_emails = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True, default="")
    webhook_secret_encrypted = models.TextField(blank=True, default="")  # Fernet, key derived from SECRET_KEY
    is_enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["team_id", "name", "id"]
        permissions = [("view_spend", "Can view spend, rollups, cost charts and recommendations")]
        indexes = [models.Index(fields=["team", "is_enabled"], name="budget_team_enabled")]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_usd__gt=0), name="budget_amount_positive"),
            models.CheckConstraint(
                condition=~models.Q(action="downgrade") | ~models.Q(downgrade_model=""),
                name="budget_downgrade_names_model",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope} {self.scope_value} {self.period} ${self.amount_usd})"


class BudgetPeriod(models.Model):
    """One budget's counters for one period. Reservations are conditional updates of this row."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="periods")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(null=True, blank=True)  # None for a total budget
    limit_units = models.BigIntegerField()
    spent_units = models.BigIntegerField(default=0)
    reserved_units = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["budget_id", "-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "period_start"], name="budgetperiod_unique_start"),
            models.CheckConstraint(
                condition=models.Q(reserved_units__gte=0), name="budgetperiod_reserved_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"budget {self.budget_id} from {self.period_start:%Y-%m-%d %H:%M}"

    @property
    def limit_usd(self) -> Decimal:
        return units_to_usd(self.limit_units)

    @property
    def spent_usd(self) -> Decimal:
        return units_to_usd(self.spent_units)

    @property
    def reserved_usd(self) -> Decimal:
        return units_to_usd(self.reserved_units)

    @property
    def remaining_usd(self) -> Decimal:
        return units_to_usd(max(self.limit_units - self.spent_units - self.reserved_units, 0))


class BudgetReservation(models.Model):
    """What one call holds on one budget period row, written with the reservation itself (see
    costs.budgets). Settling or releasing moves it out of `open` once: whoever changes the state
    returns `units` to the period row, so nothing is given back twice. Rows still open long after
    any call could have ended are released by the periodic reclaim (costs.tasks)."""

    reservation_id = models.UUIDField()  # the gateway's call id: matches observability.Call.id
    period = models.ForeignKey(BudgetPeriod, on_delete=models.CASCADE, related_name="reservations")
    units = models.BigIntegerField()
    state = models.CharField(max_length=8, choices=ReservationState.choices, default=ReservationState.OPEN)
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["reservation_id", "period"], name="budgetreservation_once_per_period"),
            models.CheckConstraint(condition=models.Q(units__gt=0), name="budgetreservation_units_positive"),
        ]
        indexes = [
            # The reclaim scans open rows by age; closed rows stay out of the index.
            models.Index(fields=["created_at"], condition=models.Q(state="open"), name="reservation_open_by_age"),
            models.Index(fields=["closed_at"], condition=~models.Q(state="open"), name="reservation_closed_by_age"),
        ]

    def __str__(self) -> str:
        return f"reservation {self.reservation_id} on period {self.period_id} ({self.state})"


class BudgetAlert(models.Model):
    """A threshold crossing; the unique constraint makes it fire once per budget, threshold and period."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField()
    spent_units = models.BigIntegerField()
    limit_units = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "threshold"], name="budgetalert_once_per_threshold_period"
            )
        ]

    def __str__(self) -> str:
        return f"budget {self.budget_id} crossed {self.threshold}%"


class Notification(models.Model):
    """An in-app notification for a team's members."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="cost_notifications")
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    title = models.CharField(max_length=300)
    body = models.TextField()
    link = models.CharField(max_length=500, blank=True, default="")
    dedupe_key = models.CharField(max_length=200, unique=True)  # fires once: an alert id or a team-hour
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"], name="costnotification_team_time")]

    def __str__(self) -> str:
        return self.title


class Delivery(models.Model):
    """One channel of a notification (email, webhook), delivered on its own Celery task after
    the notification commits, so a failing channel never loses the notification or another
    channel. Every attempt updates the row.

    `claimed_until`: an attempt in flight holds the row until then (a second task for the same
    row, sent by the safety net, does nothing meanwhile). `next_attempt_at`: when the retry
    of a failed attempt is due; a pending row well past it lost its retry (a worker died, the
    broker dropped the message) and the periodic safety net sends it again.
    """

    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class WebhookDelivery(Delivery):
    """The delivery log of a signed webhook."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="webhook_deliveries")
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="webhook_deliveries")
    url = models.URLField(max_length=500)
    body = models.TextField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "notification"], name="webhookdelivery_once_per_notification")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhookdelivery_due")]

    def __str__(self) -> str:
        return f"webhook to {self.url}: {self.status}"


class EmailDelivery(Delivery):
    """The email of a notification, to the recipients chosen when it was created."""

    notification = models.OneToOneField(Notification, on_delete=models.CASCADE, related_name="email_delivery")
    recipients = models.JSONField(default=list)
    subject = models.CharField(max_length=400)
    body = models.TextField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="emaildelivery_due")]

    def __str__(self) -> str:
        return f"email to {len(self.recipients)} recipient(s): {self.status}"


class CostRollup(models.Model):
    """Spend per team, bucket (UTC hour or day) and one dimension value, kept current incrementally."""

    team_id = models.BigIntegerField()
    granularity = models.CharField(max_length=8, choices=RollupGranularity.choices)
    dimension = models.CharField(max_length=16, choices=RollupDimension.choices)
    key = models.CharField(max_length=256)  # an id, a model name, an end user or a prompt name
    bucket_start = models.DateTimeField()
    calls = models.BigIntegerField(default=0)
    error_calls = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    cost_units = models.BigIntegerField(default=0)
    cache_hits = models.BigIntegerField(default=0)
    cache_saved_units = models.BigIntegerField(default=0)
    routed_calls = models.BigIntegerField(default=0)
    routing_saved_units = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team_id", "granularity", "dimension", "bucket_start", "key"], name="costrollup_unique_bucket"
            )
        ]

    def __str__(self) -> str:
        return f"{self.dimension}={self.key} {self.granularity} {self.bucket_start:%Y-%m-%d %H:%M}"


class Recommendation(models.Model):
    """A concrete, explained saving, rewritten by the periodic recommendations task."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="cost_recommendations")
    kind = models.CharField(max_length=32, choices=RecommendationKind.choices)
    subject = models.CharField(max_length=300)  # what it is about: "application 3 / gpt-4o"
    title = models.CharField(max_length=300)
    explanation = models.TextField()
    monthly_savings_usd = models.DecimalField(max_digits=14, decimal_places=2)
    evidence = models.JSONField(default=list)  # [{"label": ..., "url": ...}]
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-monthly_savings_usd", "id"]
        constraints = [
            models.UniqueConstraint(fields=["team", "kind", "subject"], name="recommendation_unique_subject")
        ]

    def __str__(self) -> str:
        return self.title
