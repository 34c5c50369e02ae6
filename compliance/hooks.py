"""What compliance tells, and asks, the apps above it (core.hooks: they register receivers at start-up)."""

from __future__ import annotations

from core.hooks import Hook

# The content of calls older than a team's retention period is due for purging (hourly, from
# compliance.tasks.retention_purge). Keywords: `team_id`, `older_than` (an aware datetime) and
# `purged`, a function the receiver calls once with how many calls it blanked. The app that
# stores calls (observability) blanks their prompts and responses, keeping the rows (ids, tokens,
# costs) so that their audit events and content hashes still verify; compliance records the
# purge on the audit trail in the same transaction. Required: a purge must never be skipped
# silently because nothing handles it.
call_content_expired: Hook[...] = Hook("compliance.call_content_expired", required=True)
