"""Datasets with reproducible versions, configured scorers and brand policies.

A dataset's items are immutable rows. Each change to the items (an add, an update, a removal,
or a batch of them) makes one new `DatasetVersion`: added rows get `added_in_version` = the new
number; an updated item's old row is closed (`removed_in_version` = the new number) and a new row
with the same `key` is added; a removed item's row is closed. The items of version v are the rows
with `added_in_version <= v` and (`removed_in_version` null or `> v`), so every past version stays
readable exactly, which a run that pinned it relies on. The only change ever made to a row is
closing it, once.

Scorer configurations and brand policies are versioned the same way: each change is a new
immutable version row; the parent holds the current number.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Q

from core.classification import Clearance
from core.models import BaseModel
from evaluations.types import ItemSource, ScorerKind


class Dataset(BaseModel):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    classification = models.PositiveSmallIntegerField(choices=Clearance.choices, default=Clearance.INTERNAL)
    # A JSON Schema every item (as written in JSONL: input, expected_output, ...) must satisfy; {} = none.
    item_schema = models.JSONField(default=dict, blank=True)
    current_version = models.PositiveIntegerField(default=1)
    item_count = models.PositiveIntegerField(default=0)  # live items at current_version
    is_archived = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="evaluations_dataset_unique_name_per_team"),
            models.CheckConstraint(condition=Q(current_version__gte=1), name="evaluations_dataset_version_positive"),
            models.CheckConstraint(
                condition=Q(classification__in=Clearance.values), name="evaluations_dataset_classification_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class DatasetVersion(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    author_user = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )
    author_label = models.CharField(max_length=200, blank=True, default="")
    message = models.CharField(max_length=500, blank=True, default="")
    item_count = models.PositiveIntegerField(default=0)
    added_count = models.PositiveIntegerField(default=0)
    changed_count = models.PositiveIntegerField(default=0)
    removed_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="evaluations_datasetversion_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="evaluations_datasetversion_number_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id} v{self.number}"


class DatasetItem(models.Model):
    """One immutable state of an item (see the module docstring)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    key = models.UUIDField(default=uuid.uuid4, editable=False)  # stable across an item's states
    added_in_version = models.PositiveIntegerField()
    removed_in_version = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    input = models.JSONField()  # {"messages": [...]} or {"variables": {...}}
    expected_output = models.TextField(null=True, blank=True)
    expected_facts = models.JSONField(default=list, blank=True)  # ["statement", ...]
    context = models.JSONField(default=list, blank=True)  # [{"id": ..., "text": ...}]
    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    classification = models.PositiveSmallIntegerField(choices=Clearance.choices, default=Clearance.INTERNAL)

    source = models.CharField(max_length=16, choices=ItemSource.choices, default=ItemSource.MANUAL)
    source_file = models.CharField(max_length=255, blank=True, default="")
    source_line = models.PositiveIntegerField(null=True, blank=True)
    source_call_id = models.UUIDField(null=True, blank=True)
    source_correction_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [
            # At most one live state per item.
            models.UniqueConstraint(
                fields=["dataset", "key"],
                condition=Q(removed_in_version__isnull=True),
                name="evaluations_datasetitem_one_live_state",
            ),
            models.CheckConstraint(
                condition=Q(removed_in_version__isnull=True) | Q(removed_in_version__gt=F("added_in_version")),
                name="evaluations_datasetitem_removed_after_added",
            ),
            models.CheckConstraint(condition=Q(added_in_version__gte=1), name="evaluations_datasetitem_added_positive"),
            models.CheckConstraint(
                condition=Q(classification__in=Clearance.values), name="evaluations_datasetitem_classification_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["dataset", "added_in_version"], name="evaluations_item_added_idx"),
            models.Index(fields=["dataset", "key"], name="evaluations_item_key_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.key} (v{self.added_in_version}-{self.removed_in_version or ''})"

    def is_present_at(self, version: int) -> bool:
        return self.added_in_version <= version and (
            self.removed_in_version is None or self.removed_in_version > version
        )


class BrandPolicy(BaseModel):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    current_version = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="evaluations_brandpolicy_unique_name_per_team"),
        ]

    def __str__(self) -> str:
        return self.name


class BrandPolicyVersion(models.Model):
    """Immutable rules (evaluations.scorers.brand.BrandRules as JSON)."""

    policy = models.ForeignKey(BrandPolicy, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    rules = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    author_label = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "number"], name="evaluations_brandpolicyversion_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} v{self.number}"


class ScorerConfig(BaseModel):
    """A team's configured scorer: a built-in kind with its settings, versioned."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=ScorerKind.choices)
    description = models.TextField(blank=True, default="")
    current_version = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="evaluations_scorerconfig_unique_name_per_team"),
            models.CheckConstraint(condition=Q(kind__in=ScorerKind.values), name="evaluations_scorerconfig_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class ScorerConfigVersion(models.Model):
    """Immutable, validated settings of a configured scorer; a brand policy is pinned to a version here."""

    scorer = models.ForeignKey(ScorerConfig, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    config = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    author_label = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["scorer", "number"], name="evaluations_scorerconfigversion_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.scorer_id} v{self.number}"
