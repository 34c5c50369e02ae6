"""The model catalog: providers (any OpenAI-compatible endpoint) and the models apps call.

A provider or model with no team is part of the shared catalog, managed by operators and
visible to every team; a team's own entries are managed by its admins and shadow shared
ones of the same name for that team.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core.models import BaseModel
from gateway.types import ModelTier, RoutingPolicyKind


class Provider(BaseModel):
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="providers")
    name = models.CharField(max_length=100)
    base_url = models.URLField(
        max_length=500, help_text="An OpenAI-compatible base URL, e.g. https://api.openai.com/v1"
    )
    api_key_encrypted = models.TextField(blank=True, default="")  # core.crypto; never shown again
    connect_timeout_seconds = models.FloatField(default=5.0, validators=[MinValueValidator(0.1), MaxValueValidator(60)])
    read_timeout_seconds = models.FloatField(default=60.0, validators=[MinValueValidator(0.1), MaxValueValidator(600)])
    max_retries = models.PositiveSmallIntegerField(default=2, validators=[MaxValueValidator(10)])
    retry_budget_seconds = models.FloatField(
        default=20.0,
        validators=[MinValueValidator(0), MaxValueValidator(300)],
        help_text="Total time retries may take.",
    )
    is_enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="provider_unique_team_name"),
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(team__isnull=True), name="provider_unique_shared_name"
            ),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)


class LanguageModel(BaseModel):
    """A model as apps name it (`model` in the request), served by one provider."""

    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="language_models"
    )
    name = models.CharField(max_length=200)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="language_models")
    provider_model = models.CharField(max_length=200, help_text="The model id the provider expects.")
    context_window = models.PositiveIntegerField(default=8192)
    tier = models.CharField(max_length=16, choices=ModelTier.choices, default=ModelTier.MEDIUM)
    fallbacks = models.JSONField(
        default=list, blank=True, help_text="Model names to try, in order, when this one fails."
    )
    is_enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="model_unique_team_name"),
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(team__isnull=True), name="model_unique_shared_name"
            ),
        ]
        ordering = ["name"]
        permissions = [("manage_catalog", "Can add and change providers and models of the team")]

    def __str__(self) -> str:
        return self.name


class RoutingPolicy(BaseModel):
    """How an application's calls pick a model (gateway.routing applies it).

    - `fixed`: `model` when set (overriding the requested one), else the requested model.
    - `complexity`: the query's complexity score (gateway.complexity, 0..1) picks a tier of
      `tiers` ({"small", "medium", "large"}: model names; small and large required): above
      `threshold` the large tier; with a medium tier, from `threshold / 2` up to `threshold`
      the medium tier; below that the small tier.
    - `cost_cap`: never a model whose output price is above `max_price` (USD per million
      output tokens, the price table's `output_per_million`): `model` (or the requested
      model) when within the cap, else the best tier of `tiers` within it (large, medium, small).
    Every policy then tries `fallbacks` in order.
    """

    application = models.OneToOneField("accounts.Application", on_delete=models.CASCADE, related_name="routing")
    policy = models.CharField(max_length=32, choices=RoutingPolicyKind.choices, default=RoutingPolicyKind.FIXED)
    model = models.CharField(max_length=200, blank=True, default="")
    fallbacks = models.JSONField(default=list, blank=True)
    tiers = models.JSONField(default=dict, blank=True)  # {"small": name, "medium": name, "large": name}
    threshold = models.FloatField(
        default=0.5, validators=[MinValueValidator(0), MaxValueValidator(1)], help_text="Complexity above it: large."
    )
    max_price = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="cost_cap: the highest output price allowed, USD per million output tokens.",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(threshold__gte=0, threshold__lte=1), name="routing_threshold_0_to_1"
            ),
            models.CheckConstraint(
                condition=models.Q(max_price__isnull=True) | models.Q(max_price__gte=0),
                name="routing_max_price_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application}: {self.policy}"
