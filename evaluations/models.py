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

An eval run pins a dataset version, a target and its scorers (resolved when it is created: a
prompt label becomes the version it named). It has one `EvalResult` per (item key, repeat),
made when the run starts, and one `EvalScore` per (result, scorer). A result is written once:
its status leaves `pending` by a conditional update that names the lease its worker holds
(evaluations.execution), and the run's counters move in the same transaction.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Q

from core.classification import Clearance
from core.models import BaseModel
from evaluations.types import GateCheckStatus, ItemSource, ResultStatus, RunStatus, ScorerKind, TargetKind


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


class EvalKey(models.Model):
    """The dedicated application key runs of a team call the gateway with, one per clearance
    level and cache setting. The secret is stored encrypted (core.crypto) and never logged."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    clearance = models.PositiveSmallIntegerField(choices=Clearance.choices)
    uses_cache = models.BooleanField(default=False)
    application = models.ForeignKey("accounts.Application", on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey("accounts.ApiKey", on_delete=models.CASCADE, related_name="+")
    secret_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "clearance", "uses_cache"], name="evaluations_evalkey_one_per_team_level_cache"
            ),
        ]

    def __str__(self) -> str:
        return f"eval key of team {self.team_id} at {self.clearance}"


class EvalRun(BaseModel):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200, blank=True, default="")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs")
    dataset_version = models.PositiveIntegerField()
    # {"kind": "prompt", "prompt": name, "prompt_id", "version", "label", "model", "params"} |
    # {"kind": "model", "model", "params"} | {"kind": "recorded", "column"}
    target_kind = models.CharField(max_length=16, choices=TargetKind.choices)
    target = models.JSONField()
    # [{"name", "kind", "config", "scorer_config_id", "scorer_config_version", "threshold"}, ...]
    scorers = models.JSONField(default=list)
    repeats = models.PositiveSmallIntegerField(default=1)
    uses_cache = models.BooleanField(default=False)
    # In-flight calls to the target's model across all workers (evaluations.concurrency).
    max_concurrency = models.PositiveSmallIntegerField(default=16)
    key = models.ForeignKey(EvalKey, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    classification = models.PositiveSmallIntegerField(choices=Clearance.choices, default=Clearance.INTERNAL)
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )
    created_by_label = models.CharField(max_length=200, blank=True, default="")

    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    status_message = models.CharField(max_length=1000, blank=True, default="")
    total_count = models.PositiveIntegerField(default=0)
    done_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)  # failed and error results
    cost_usd = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)  # the last stored result

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="evaluations_evalrun_status_valid"),
            models.CheckConstraint(condition=Q(repeats__gte=1), name="evaluations_evalrun_repeats_positive"),
            models.CheckConstraint(
                condition=Q(done_count__lte=F("total_count")) & Q(failed_count__lte=F("total_count")),
                name="evaluations_evalrun_counts_within_total",
            ),
        ]
        indexes = [models.Index(fields=["team", "-created_at"], name="evaluations_run_team_idx")]

    def __str__(self) -> str:
        return self.name or f"run {self.pk}"

    @property
    def remaining_count(self) -> int:
        return max(0, self.total_count - self.done_count - self.failed_count)


class EvalResult(models.Model):
    """One item of the pinned dataset version, answered once (for one repeat)."""

    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    item_key = models.UUIDField()
    item_id = models.BigIntegerField()  # the DatasetItem row of the pinned version
    repeat = models.PositiveSmallIntegerField(default=0)
    chunk = models.PositiveIntegerField()
    classification = models.PositiveSmallIntegerField(choices=Clearance.choices, default=Clearance.INTERNAL)
    status = models.CharField(max_length=16, choices=ResultStatus.choices, default=ResultStatus.PENDING)
    # A worker's claim on a pending result: another worker may take it once it is stale.
    lease_token = models.UUIDField(null=True, blank=True)
    leased_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    output = models.TextField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    call_id = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=256, blank=True, default="")
    latency_ms = models.FloatField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "item_key", "repeat"], name="evaluations_evalresult_once"),
            models.CheckConstraint(
                condition=Q(status__in=ResultStatus.values), name="evaluations_evalresult_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["run", "chunk", "status"], name="evaluations_result_chunk_idx"),
            models.Index(fields=["run", "status"], name="evaluations_result_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.item_key}#{self.repeat}"


class EvalScore(models.Model):
    """One scorer's verdict on one result: a value in [0, 1], or the error that kept it from scoring."""

    result = models.ForeignKey(EvalResult, on_delete=models.CASCADE, related_name="scores")
    scorer_index = models.PositiveSmallIntegerField()  # position in the run's `scorers`
    scorer_name = models.CharField(max_length=200)
    scorer_version = models.CharField(max_length=64, blank=True, default="")
    value = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    label = models.CharField(max_length=200, null=True, blank=True)
    explanation = models.TextField(blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    spread = models.FloatField(null=True, blank=True)  # judge samples: max - min
    cost_usd = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["result", "scorer_index"], name="evaluations_evalscore_once"),
            models.CheckConstraint(
                condition=Q(value__isnull=True) | (Q(value__gte=0) & Q(value__lte=1)),
                name="evaluations_evalscore_value_0_1",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scorer_name}={self.value}"


class EvaluationGate(BaseModel):
    """Evidence a protected label needs before it moves: the candidate version's run on the gate's
    dataset must reach each scorer's minimum mean and (optionally) show no significant regression
    against the version on the label (evaluations.services.gates)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.CASCADE, related_name="+")
    label = models.CharField(max_length=64)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="gates")
    dataset_version = models.PositiveIntegerField(null=True, blank=True)  # None: the dataset's current version
    # [{"name", "kind", "config", "scorer_config_id", "scorer_config_version", "min_score"}, ...]
    scorers = models.JSONField(default=list)
    model = models.CharField(max_length=256, blank=True, default="")  # when a version names no model
    requires_no_regression = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "label"],
                condition=Q(is_active=True),
                name="evaluations_gate_one_active_per_label",
            ),
        ]

    def __str__(self) -> str:
        return f"gate on {self.prompt_id}:{self.label}"


class GateCheck(models.Model):
    """One decision of a gate on moving its label from `current_version` to `candidate_version`."""

    gate = models.ForeignKey(EvaluationGate, on_delete=models.CASCADE, related_name="checks")
    candidate_version = models.ForeignKey("prompts.PromptVersion", on_delete=models.CASCADE, related_name="+")
    current_version = models.ForeignKey(
        "prompts.PromptVersion", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    dataset_version = models.PositiveIntegerField()
    candidate_run = models.ForeignKey(EvalRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    current_run = models.ForeignKey(EvalRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=16, choices=GateCheckStatus.choices)
    reasons = models.JSONField(default=list)
    source = models.CharField(max_length=16, default="label_move")  # label_move | ci
    requested_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )
    requested_by_label = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    overridden_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )
    override_reason = models.TextField(blank=True, default="")
    overridden_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=GateCheckStatus.values), name="evaluations_gatecheck_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["gate", "candidate_version", "-id"], name="evaluations_gatecheck_idx")]

    def __str__(self) -> str:
        return f"check {self.pk} of gate {self.gate_id}: {self.status}"
