"""Value types of evaluations that other apps may use (the public surface beside services and selectors)."""

from __future__ import annotations

from django.db import models


class ItemSource(models.TextChoices):
    """Where a dataset item came from (its provenance)."""

    MANUAL = "manual", "Manual (API or UI)"
    IMPORT = "import", "Imported file"
    CALL = "call", "Recorded call"
    CORRECTION = "correction", "Reviewer correction"


class ScorerKind(models.TextChoices):
    """The built-in scorers a team may configure (evaluations.scorers.registry holds their code)."""

    EXACT_MATCH = "exact_match", "Exact match"
    CONTAINS = "contains", "Contains"
    NOT_CONTAINS = "not_contains", "Does not contain"
    REGEX = "regex", "Regular expression"
    VALID_JSON = "valid_json", "Valid JSON"
    JSON_SCHEMA = "json_schema", "JSON Schema"
    LENGTH = "length", "Length bounds"
    REFUSAL = "refusal", "Refusal detection"
    SEMANTIC_SIMILARITY = "semantic_similarity", "Semantic similarity"
    RELEVANCE = "relevance", "Relevance"
    CORRECTNESS = "correctness", "Correctness against expected facts"
    GROUNDEDNESS = "groundedness", "Groundedness in context"
    TOXICITY = "toxicity", "Toxicity"
    BRAND_COMPLIANCE = "brand_compliance", "Brand compliance"
    LLM_JUDGE = "llm_judge", "LLM as judge"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.CANCELLING)


class ResultStatus(models.TextChoices):
    """One (item, repeat) of a run. `failed`: the target could not answer (provider error, budget
    or guardrail refusal); `error`: the item could not be run at all (bad input, a bug)."""

    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"


class TargetKind(models.TextChoices):
    PROMPT = "prompt", "A prompt at a label or version"
    MODEL = "model", "A model, sent the item's messages"
    RECORDED = "recorded", "A recorded output column (no call)"


class GateCheckStatus(models.TextChoices):
    """An evaluation gate's decision on one label move (or one CI check)."""

    PENDING = "pending", "Waiting for runs"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    OVERRIDDEN = "overridden", "Overridden"
