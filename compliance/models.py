"""The audit trail: append-only events sealed into a hash chain, signed checkpoints, exports
and per-team retention of call content.

An event is written unsealed (`sequence` NULL) by `audit_record`, cheaply, on any request
path. A worker seals pending events in order: it gives each the next number of a gapless
sequence and a hash over its canonical content and the previous event's hash
(compliance/chain.py). On PostgreSQL triggers reject UPDATE and DELETE of sealed events
(migration 0002), the INSERT of an event already sealed and TRUNCATE (migration 0004).
Actors, teams and targets are kept by value, not by foreign key, so that an event outlives
what it names and no cascade can ever delete it.
"""

from __future__ import annotations

import json

from django.db import models

from compliance.types import ActorType, ExportFormat, ExportStatus
from core.ids import uuid7


class AuditEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    # Assigned when sealed: 1, 2, 3, ... without gaps. NULL while pending.
    sequence = models.BigIntegerField(null=True, blank=True, unique=True)
    created_at = models.DateTimeField(db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    actor_api_key_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=200, blank=True, default="")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    team_id = models.BigIntegerField(null=True, blank=True)
    application_id = models.BigIntegerField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True, default="")
    ip_address = models.CharField(max_length=45, blank=True, default="")  # normalised by ipaddress
    # How the event was hashed (compliance/chain.py): set when sealed, 0 while pending.
    chain_format = models.PositiveSmallIntegerField(default=0)
    previous_hash = models.CharField(max_length=64, blank=True, default="")
    hash = models.CharField(max_length=64, blank=True, default="")
    sealed_at = models.DateTimeField(null=True, blank=True)
    # Why the sealer refused to seal this event (dated before the sealed chain: backdated);
    # "" otherwise. A refused event stays unsealed, for verification to report.
    seal_refusal = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        permissions = [("export_auditevent", "Can export the audit trail")]
        indexes = [
            models.Index(fields=["team_id", "-id"], name="audit_team_id"),
            models.Index(fields=["action", "-id"], name="audit_action_id"),
            models.Index(fields=["application_id", "-id"], name="audit_application_id"),
            models.Index(fields=["actor_user_id", "-id"], name="audit_actor_user_id"),
            models.Index(
                fields=["id"], condition=models.Q(sequence__isnull=True), name="audit_pending"
            ),  # the sealer's queue
        ]

    def __str__(self) -> str:
        return f"audit #{self.sequence or '-'} {self.action} by {self.actor_label}"

    @property
    def is_sealed(self) -> bool:
        return self.sequence is not None


class AuditCheckpoint(models.Model):
    """A signed statement "the chain had `sequence` events ending in `head_hash` at `created_at`".

    A verifier that finds the chain shorter than a checkpoint, or with another hash at the
    checkpoint's position, knows the tail was truncated or rewritten.
    """

    id = models.BigAutoField(primary_key=True)
    sequence = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(db_index=True)
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["-sequence"]

    def __str__(self) -> str:
        return f"checkpoint at #{self.sequence}"


class AuditExport(models.Model):
    """One export of the audit trail: streamed over the API or written to a file by a job.

    Holds the signed manifest once the export is complete.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    team_id = models.BigIntegerField(null=True, blank=True)  # the team filter; NULL = all the exporter's teams
    exporter_user_id = models.BigIntegerField(null=True, blank=True)
    exporter_api_key_id = models.BigIntegerField(null=True, blank=True)
    exporter_label = models.CharField(max_length=200)
    format = models.CharField(max_length=8, choices=ExportFormat.choices)
    filters = models.JSONField(default=dict)
    is_streamed = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.PENDING)
    total_rows = models.BigIntegerField(default=0)
    row_count = models.BigIntegerField(default=0)
    manifest = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export {self.id} ({self.format}, {self.status})"

    @property
    def progress_percent(self) -> int:
        if self.status == ExportStatus.DONE:
            return 100
        return min(99, int(self.row_count * 100 / self.total_rows)) if self.total_rows else 0

    @property
    def filename(self) -> str:
        return f"audit-{self.id}.{self.format}"

    @property
    def manifest_json(self) -> str:
        """The signed manifest as the JSON a verifier reads (docs/audit-verification.md), as an
        export job writes it to `<file>.manifest.json`."""
        return json.dumps(self.manifest, indent=2, ensure_ascii=False) if self.manifest is not None else ""

    @property
    def filters_json(self) -> str:
        return json.dumps(self.filters, ensure_ascii=False, sort_keys=True)


class RetentionPolicy(models.Model):
    """How long a team keeps call content (prompts and responses). Hashes and audit events stay."""

    team = models.OneToOneField("accounts.Team", on_delete=models.CASCADE, related_name="retention_policy")
    call_content_days = models.PositiveIntegerField(null=True, blank=True)  # NULL: keep forever
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"retention for team {self.team_id}: {self.call_content_days or 'forever'} days"
