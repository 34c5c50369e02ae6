"""What accounts tell the apps above them (core.hooks: they register receivers at start-up).

Every change to teams, memberships, applications, API keys, accounts and invitations, and
every login lockout, is an audit event. The audit trail belongs to compliance, which sits
above accounts: accounts calls `audit_event` and compliance, in its AppConfig.ready(),
registers the receiver that writes the event. The call is synchronous, in the caller's
transaction, so the event commits or rolls back with the change it records.
"""

from __future__ import annotations

from core.hooks import Hook, Question

# Record one audit event. Keywords: `actor` (an accounts.caller.Caller, or None for the system
# itself), `action` (an AuditAction), `target_type`, `target_id`, `team_id`, and optionally
# `application_id`, `before`, `after`, `metadata`, `request`. Required: with no receiver the
# change fails instead of going unrecorded.
audit_event: Hook[...] = Hook("accounts.audit_event", required=True)

# How many calls an application has recorded (keyword `application_id`): an application with
# calls is archived, never deleted, so that its records keep it. The call table belongs to
# observability, which answers.
application_call_count: Question[..., int] = Question("accounts.application_call_count")


class AuditAction:
    """The action names of accounts' audit events. Stored in every event and searched for by
    compliance officers (`api_key.*`): never rename one."""

    TEAM_CREATE = "team.create"
    TEAM_UPDATE = "team.update"
    MEMBERSHIP_ADD = "membership.add"
    MEMBERSHIP_UPDATE = "membership.update"
    MEMBERSHIP_REMOVE = "membership.remove"
    APPLICATION_CREATE = "application.create"
    APPLICATION_UPDATE = "application.update"
    APPLICATION_ARCHIVE = "application.archive"
    APPLICATION_RESTORE = "application.restore"
    APPLICATION_DELETE = "application.delete"
    API_KEY_CREATE = "api_key.create"
    API_KEY_REVOKE = "api_key.revoke"
    USER_CREATE = "user.create"
    INVITATION_CREATE = "invitation.create"
    INVITATION_ACCEPT = "invitation.accept"
    INVITATION_REVOKE = "invitation.revoke"
    LOCKOUT = "auth.lockout"
