"""The call record: one row per LLM call, through the gateway or ingested from an app.

Field names follow the OpenTelemetry GenAI semantic conventions where one exists (noted
per field). Team, application and key are foreign keys without database constraints:
records are written in batches on the hot path's behalf and must never be lost to a
constraint, and the table is meant to be partitioned by month in production.
"""

from __future__ import annotations

from django.db import models

from core.classification import Clearance
from core.ids import uuid7
from observability.types import CacheResult, CallSource, CallStatus


class Call(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    created_at = models.DateTimeField(db_index=True)  # when the request arrived
    source = models.CharField(max_length=16, choices=CallSource.choices, default=CallSource.GATEWAY)
    client_call_id = models.CharField(max_length=128, blank=True, default="")  # idempotency for ingestion

    team = models.ForeignKey("accounts.Team", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    application = models.ForeignKey(
        "accounts.Application", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    end_user = models.CharField(max_length=256, blank=True, default="")  # gen_ai: user / enduser.id

    # Prompt and experiment, kept by value so that the record outlives them.
    prompt_id = models.BigIntegerField(null=True, blank=True)
    prompt_name = models.CharField(max_length=200, blank=True, default="")
    prompt_version_id = models.BigIntegerField(null=True, blank=True)
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    experiment_id = models.BigIntegerField(null=True, blank=True)
    experiment_variant = models.CharField(max_length=100, blank=True, default="")

    operation = models.CharField(max_length=32, default="chat")  # gen_ai.operation.name
    request_model = models.CharField(max_length=200, blank=True, default="")  # gen_ai.request.model
    response_model = models.CharField(max_length=200, blank=True, default="")  # gen_ai.response.model
    provider = models.CharField(max_length=100, blank=True, default="")  # gen_ai.provider.name
    route_reason = models.CharField(max_length=200, blank=True, default="")
    route_tier = models.CharField(max_length=16, blank=True, default="")  # small / medium / large when routed
    route_score = models.FloatField(null=True, blank=True)  # the complexity score that chose the tier
    cache_result = models.CharField(max_length=16, choices=CacheResult.choices, default=CacheResult.NONE)
    cache_entry_id = models.CharField(max_length=64, blank=True, default="")  # served (or shadow) entry
    cache_similarity = models.FloatField(null=True, blank=True)  # 1.0 for an exact match
    is_stream = models.BooleanField(default=False)

    request_messages = models.JSONField(default=list)  # gen_ai.input.messages
    request_params = models.JSONField(default=dict)  # temperature, max_tokens, ... (gen_ai.request.*)
    response_text = models.TextField(blank=True, default="")  # gen_ai.output.messages (text)
    response_id = models.CharField(max_length=200, blank=True, default="")  # gen_ai.response.id
    finish_reason = models.CharField(max_length=64, blank=True, default="")  # gen_ai.response.finish_reasons

    input_tokens = models.PositiveIntegerField(default=0)  # gen_ai.usage.input_tokens
    output_tokens = models.PositiveIntegerField(default=0)  # gen_ai.usage.output_tokens
    cached_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    # What the call would have cost without the cache (a hit's upstream cost is zero) or at
    # the model routing replaced.
    cache_saved_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    routing_saved_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)

    latency_ms = models.FloatField(null=True, blank=True)
    time_to_first_token_ms = models.FloatField(null=True, blank=True)
    gateway_overhead_ms = models.FloatField(null=True, blank=True)

    status = models.CharField(max_length=16, choices=CallStatus.choices, default=CallStatus.SUCCESS)
    http_status = models.PositiveSmallIntegerField(default=200)
    error_type = models.CharField(max_length=100, blank=True, default="")  # error.type
    error_message = models.TextField(blank=True, default="")
    retries = models.PositiveSmallIntegerField(default=0)
    attempts = models.JSONField(default=list)  # each upstream attempt: model, provider, status, error, ms

    # The highest classification of what went into the call: its prompt version, the documents
    # it used, and the team's rule matches on its input and output. Readers below it see the
    # content masked (observability.selectors).
    classification = models.PositiveSmallIntegerField(choices=Clearance.choices, default=Clearance.PUBLIC)
    context_report = models.JSONField(default=dict)  # documents included and dropped, with reasons
    guardrail_findings = models.JSONField(default=list)  # type, score, action (compliance)
    metadata = models.JSONField(default=dict)

    # Not a column: set by observability.selectors.call_mask_for when the reader may not see the content.
    is_masked: bool = False

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="call_team_time"),
            models.Index(fields=["application", "-created_at"], name="call_application_time"),
            models.Index(fields=["request_model", "-created_at"], name="call_model_time"),
            models.Index(fields=["end_user", "-created_at"], name="call_end_user_time"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "client_call_id"],
                condition=~models.Q(client_call_id=""),
                name="call_unique_client_call_id",
            )
        ]

    def __str__(self) -> str:
        return f"call {self.id} {self.request_model} {self.status}"
