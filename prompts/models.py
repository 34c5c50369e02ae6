"""Prompts, immutable versions, movable labels with their history, and A/B experiments."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from core.classification import Clearance
from core.models import BaseModel
from prompts.types import ExperimentStatus, LabelAction

DEFAULT_PROTECTED_LABELS = ["production"]


def default_protected_labels() -> list[str]:
    return list(DEFAULT_PROTECTED_LABELS)


class Prompt(BaseModel):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="prompts")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    # Moving one of these labels needs the deploy permission (role or object permission).
    protected_labels = models.JSONField(default=default_protected_labels, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="prompt_unique_team_name")]
        ordering = ["team_id", "name"]
        permissions = [
            ("deploy_prompt", "Can move protected labels (such as production) of the prompt"),
            ("use_prompt", "Can serve the prompt to end users and record experiment exposures"),
        ]

    def __str__(self) -> str:
        return self.name

    def is_protected(self, label: str) -> bool:
        return label in self.protected_labels


class PromptVersion(models.Model):
    """One immutable version: saved once, never updated (see `save`)."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    messages = models.JSONField()
    params = models.JSONField(default=dict, blank=True)
    variables = models.JSONField(default=list, blank=True)
    context_budget = models.JSONField(default=dict, blank=True)
    # Data level of the version's messages: callers below it are refused the version and shown
    # its metadata only (issue 6). Part of the content: a new level is a new version.
    classification = models.PositiveSmallIntegerField(choices=Clearance.choices, default=Clearance.INTERNAL)
    commit_message = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_label = models.CharField(max_length=200, blank=True)
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    # Not a column: set by selectors.versions_masked_for when the viewer may not see the messages.
    is_masked: bool = False

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["prompt", "number"], name="prompt_version_unique_number"),
            models.CheckConstraint(condition=models.Q(number__gte=1), name="prompt_version_number_positive"),
        ]
        ordering = ["prompt_id", "-number"]

    def __str__(self) -> str:
        return f"{self.prompt_id} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The invariant "a version is immutable" is enforced here, not only by convention.
        if not self._state.adding:
            raise ValueError("Prompt versions are immutable; create a new version instead.")
        super().save(*args, **kwargs)

    @property
    def classification_name(self) -> str:
        return str(Clearance(self.classification).label)

    def is_visible_at(self, clearance: int) -> bool:
        """Whether a viewer with `clearance` may see this version's messages."""
        return self.classification <= clearance


class PromptLabel(BaseModel):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=64)
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="labels")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="prompt_label_unique_name")]
        ordering = ["prompt_id", "name"]

    def __str__(self) -> str:
        return f"{self.name} -> v{self.version.number}"


class LabelHistory(models.Model):
    """Append-only record of every label move: who, from, to, when and why."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="label_history")
    label = models.CharField(max_length=64)
    action = models.CharField(max_length=32, choices=LabelAction.choices, default=LabelAction.MOVE)
    from_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="+")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["prompt", "label", "-id"], name="label_history_prompt_label")]
        verbose_name_plural = "label history"

    def __str__(self) -> str:
        return f"{self.label}: {self.from_version_id} -> {self.to_version_id}"


class Experiment(BaseModel):
    """A server-side A/B test: resolving `label` for a subject serves one variant's version."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=100)
    label = models.CharField(max_length=64, default="production")
    status = models.CharField(max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT)
    # {"metadata key": "value", ...}: only subjects whose metadata matches all of them take part.
    segment = models.JSONField(default=dict, blank=True)
    winner = models.ForeignKey("ExperimentVariant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by_label = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["prompt", "name"], name="experiment_unique_prompt_name"),
            models.UniqueConstraint(
                fields=["prompt", "label"],
                condition=models.Q(status="running"),
                name="experiment_one_running_per_label",
            ),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name


class ExperimentVariant(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=32)
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="+")
    weight = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="experiment_variant_unique_name"),
            models.CheckConstraint(condition=models.Q(weight__gte=1), name="experiment_variant_weight_positive"),
        ]
        ordering = ["experiment_id", "id"]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version_id}, weight {self.weight})"


class ExperimentExposure(models.Model):
    """One subject served one variant for one call; outcome fields are filled when known."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    variant = models.ForeignKey(ExperimentVariant, on_delete=models.CASCADE, related_name="exposures")
    subject = models.CharField(max_length=200)
    call_id = models.CharField(max_length=100, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    cost_usd = models.FloatField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True)
    is_success = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["experiment", "variant"], name="exposure_experiment_variant")]

    def __str__(self) -> str:
        return f"{self.subject} -> {self.variant_id}"
