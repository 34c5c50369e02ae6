"""Writes for invitations: a team admin invites someone by a one-time link; its holder picks a
username and password and joins the team with the role and clearance the admin chose.

The link carries a random token (256 bits); only its SHA-256 is stored (accounts.keys), so the
link is shown once, to the admin who creates it, and cannot be read back from the database.
"""

from __future__ import annotations

import datetime
import logging
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts import keys, roles
from accounts.audit import audit_change
from accounts.caller import Caller, caller_for_user
from accounts.hooks import AuditAction
from accounts.models import Invitation, Team
from accounts.services import _check_grantable, checked_email, user_create  # one grant rule, one email check
from core.classification import Clearance
from core.errors import ApplicationError, Conflict, NotFound, ValidationFailed

logger = logging.getLogger(__name__)


DEFAULT_EXPIRY_DAYS = 7
MAX_EXPIRY_DAYS = 30


class InvitationUnusable(ApplicationError):
    """The link was real but can no longer be used (accepted, revoked or expired)."""

    status_code = 410
    default_code = "invitation_unusable"


def _state(invitation: Invitation) -> dict[str, Any]:
    return {
        "email": invitation.email,
        "role": invitation.role,
        "clearance": Clearance(invitation.clearance).label,
        "expires_at": invitation.expires_at,
    }


def _audit(
    actor: Caller | None,
    action: str,
    invitation: Invitation,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    audit_change(actor, action, invitation, team_id=invitation.team_id, before=before, after=after)


def invitation_create(
    *,
    caller: Caller,
    team: Team,
    email: str,
    role: str,
    clearance: int,
    expires_in_days: int = DEFAULT_EXPIRY_DAYS,
) -> tuple[Invitation, str]:
    """Create an invitation and return it with its token; the token is never retrievable again.

    Team admins invite, with a role and clearance no higher than their own.
    """
    caller.require_permission(roles.CREATE_USER, team_id=team.id, action="invite people")
    _check_grantable(caller=caller, team_id=team.id, role=role, clearance=clearance, what="an invitee")
    email = checked_email(email)
    if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise ValidationFailed(
            f"expires_in_days must be from 1 to {MAX_EXPIRY_DAYS} (days); got {expires_in_days}.",
            param="expires_in_days",
        )
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            team=team,
            email=email,
            role=role,
            clearance=clearance,
            token_hash=keys.secret_hash(token),
            created_by=caller.user,
            expires_at=timezone.now() + datetime.timedelta(days=expires_in_days),
        )
        _audit(caller, AuditAction.INVITATION_CREATE, invitation, after=_state(invitation))
    logger.info("invitation created", extra={"invitation_id": invitation.pk, "team_id": team.id})
    return invitation, token


def invitation_revoke(*, caller: Caller, invitation: Invitation) -> Invitation:
    caller.require_permission(roles.CREATE_USER, team_id=invitation.team_id, action="revoke invitations")
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if invitation.accepted_at is not None:
            raise Conflict(
                f"The invitation of {invitation.email} was already accepted; remove the member instead.",
                code="invitation_accepted",
            )
        if invitation.revoked_at is not None:
            raise Conflict(f"The invitation of {invitation.email} is already revoked.", code="invitation_revoked")
        invitation.revoked_at = timezone.now()
        invitation.revoked_by = caller.user
        invitation.save(update_fields=["revoked_at", "revoked_by", "updated_at"])
        _audit(
            caller,
            AuditAction.INVITATION_REVOKE,
            invitation,
            before={"revoked_at": None},
            after={"email": invitation.email, "revoked_at": invitation.revoked_at},
        )
    return invitation


def _unusable_message(invitation: Invitation) -> str:
    state = invitation.state
    if state == Invitation.State.ACCEPTED:
        return (
            "This invitation was already used. Log in with the account it created, or ask a team admin for a new one."
        )
    if state == Invitation.State.REVOKED:
        return "This invitation was withdrawn by a team admin. Ask them for a new one."
    return "This invitation has expired. Ask a team admin for a new one."


def invitation_for_token(token: str, *, for_update: bool = False) -> Invitation:
    """The pending invitation of `token`: NotFound for a token that matches none (saying nothing
    about any invitation), InvitationUnusable for one that was used, withdrawn or expired."""
    invitations = Invitation.objects.select_related("team")
    if for_update:
        invitations = invitations.select_for_update()
    invitation = invitations.filter(token_hash=keys.secret_hash(token)).first()
    if invitation is None:
        raise NotFound("This invitation link is not valid. Check that you copied all of it.")
    if not invitation.is_pending:
        raise InvitationUnusable(_unusable_message(invitation))
    return invitation


def invitation_accept(*, token: str, username: str, password: str) -> Any:
    """Create the invitee's account as a member of the invitation's team, once; return the user."""
    with transaction.atomic():
        # Locked, so that two submissions of the same link cannot both create an account.
        invitation = invitation_for_token(token, for_update=True)
        if get_user_model().objects.filter(username__iexact=username.strip()).exists():
            raise Conflict(f"The username '{username.strip()}' is taken; pick another.", param="username")
        # The role, clearance and team come from the invitation alone, never from the request.
        user, _ = user_create(
            caller=None,
            team=invitation.team,
            username=username,
            email=invitation.email,
            role=invitation.role,
            clearance=invitation.clearance,
            password=password,
        )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
        _audit(
            caller_for_user(user),
            AuditAction.INVITATION_ACCEPT,
            invitation,
            before={"accepted_at": None},
            after={**_state(invitation), "username": user.get_username(), "accepted_at": invitation.accepted_at},
        )
    logger.info("invitation accepted", extra={"invitation_id": invitation.pk, "user_id": user.pk})
    return user
