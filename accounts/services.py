"""Writes for teams, memberships, applications and API keys. Views validate; these act."""

from __future__ import annotations

import datetime
import logging
import secrets
import zlib
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import keys, roles
from accounts.audit import audit_change
from accounts.caller import Caller, TeamGrant
from accounts.hooks import AuditAction, application_call_count
from accounts.models import ApiKey, Application, Membership, Role, Team
from accounts.names import application_name_problem
from core.classification import Clearance
from core.errors import AuthenticationRequired, Conflict, PermissionDenied, ValidationFailed
from core.generation_cache import generation_bump_key

logger = logging.getLogger(__name__)


def team_create(*, caller: Caller, name: str, description: str = "", time_zone: str = "UTC") -> Team:
    if not caller.can_create_teams or caller.user is None:
        raise PermissionDenied(
            "Only operators (superusers or users with the 'accounts.add_team' permission) can create teams."
        )
    with transaction.atomic():
        if Team.objects.filter(name__iexact=name).exists():
            raise Conflict(f"A team named '{name}' already exists; pick another name.", param="name")
        team = Team.objects.create(name=name, description=description, time_zone=time_zone)
        Membership.objects.create(user=caller.user, team=team, role=Role.ADMIN, clearance=Clearance.RESTRICTED)
        audit_change(caller, AuditAction.TEAM_CREATE, team, team_id=team.id, after=_team_state(team))
    caller.grants[team.id] = TeamGrant(role=Role.ADMIN, clearance=Clearance.RESTRICTED)
    logger.info("team created", extra={"team_id": team.id, "actor": caller.label})
    return team


def team_update(
    *, caller: Caller, team: Team, name: str | None = None, description: str | None = None, time_zone: str | None = None
) -> Team:
    caller.require_permission(roles.CHANGE_TEAM, team_id=team.id, action="change this team")
    before = _team_state(team)
    if name is not None and name != team.name:
        if Team.objects.filter(name__iexact=name).exclude(pk=team.pk).exists():
            raise Conflict(f"A team named '{name}' already exists; pick another name.", param="name")
        team.name = name
    if description is not None:
        team.description = description
    if time_zone is not None:
        team.time_zone = time_zone
    with transaction.atomic():
        team.save()
        audit_change(caller, AuditAction.TEAM_UPDATE, team, team_id=team.id, before=before, after=_team_state(team))
    return team


def _team_state(team: Team) -> dict[str, str]:
    return {"name": team.name, "description": team.description, "time_zone": team.time_zone}


def _membership_state(membership: Membership) -> dict[str, object]:
    return {"user_id": membership.user_id, "role": membership.role, "clearance": Clearance(membership.clearance).label}


def _audit_membership(
    caller: Caller, action: str, membership: Membership, *, before: dict | None = None, after: dict | None = None
) -> None:
    audit_change(
        caller, action, membership, target_id=membership.user_id, team_id=membership.team_id, before=before, after=after
    )


def _check_grantable(*, caller: Caller, team_id: int, role: str, clearance: int, what: str) -> None:
    caller_role = caller.role_in(team_id) or ""
    if not roles.role_can_grant(caller_role, role):
        raise PermissionDenied(
            f"Your role ({caller_role}) cannot give the role '{role}' to {what}: "
            "it carries permissions you do not have."
        )
    if clearance > caller.clearance_in(team_id):
        raise PermissionDenied(
            f"You cannot give {what} the clearance '{Clearance(clearance).label}': it is above your own "
            f"('{Clearance(caller.clearance_in(team_id)).label}')."
        )


def _check_changeable(*, caller: Caller, membership: Membership, action: str) -> None:
    """Nobody changes or removes a member whose role or clearance is above their own."""
    caller_role = caller.role_in(membership.team_id) or ""
    if not roles.role_can_grant(caller_role, membership.role):
        raise PermissionDenied(
            f"Your role ({caller_role}) cannot {action} a member whose role ('{membership.role}') "
            "carries permissions you do not have."
        )
    if membership.clearance > caller.clearance_in(membership.team_id):
        raise PermissionDenied(
            f"You cannot {action} a member whose clearance ('{Clearance(membership.clearance).label}') is "
            f"above your own ('{Clearance(caller.clearance_in(membership.team_id)).label}')."
        )


def membership_add(*, caller: Caller, team: Team, username: str, role: str, clearance: int) -> Membership:
    caller.require_permission(roles.ADD_MEMBERSHIP, team_id=team.id, action="add members to this team")
    _check_grantable(caller=caller, team_id=team.id, role=role, clearance=clearance, what="a member")
    user_model = get_user_model()
    try:
        user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
    except user_model.DoesNotExist:
        raise ValidationFailed(
            f"No user named '{username}' exists; an operator must create the account first.", param="username"
        ) from None
    try:
        with transaction.atomic():
            membership = Membership.objects.create(user=user, team=team, role=role, clearance=clearance)
            _audit_membership(caller, AuditAction.MEMBERSHIP_ADD, membership, after=_membership_state(membership))
    except IntegrityError:
        raise Conflict(
            f"'{username}' is already a member of {team.name}; change their role instead.", param="username"
        ) from None
    return membership


def membership_update(
    *, caller: Caller, membership: Membership, role: str | None = None, clearance: int | None = None
) -> Membership:
    team_id = membership.team_id
    caller.require_permission(roles.CHANGE_MEMBERSHIP, team_id=team_id, action="change members' roles")
    _check_changeable(caller=caller, membership=membership, action="change")
    new_role = role if role is not None else membership.role
    new_clearance = clearance if clearance is not None else membership.clearance
    _check_grantable(caller=caller, team_id=team_id, role=new_role, clearance=new_clearance, what="a member")
    with transaction.atomic():
        if membership.role == Role.ADMIN and new_role != Role.ADMIN:
            _ensure_another_admin(membership)
        before = _membership_state(membership)
        membership.role = new_role
        membership.clearance = new_clearance
        membership.save(update_fields=["role", "clearance", "updated_at"])
        _audit_membership(
            caller, AuditAction.MEMBERSHIP_UPDATE, membership, before=before, after=_membership_state(membership)
        )
    return membership


def membership_remove(*, caller: Caller, membership: Membership) -> None:
    caller.require_permission(roles.DELETE_MEMBERSHIP, team_id=membership.team_id, action="remove members")
    _check_changeable(caller=caller, membership=membership, action="remove")
    with transaction.atomic():
        if membership.role == Role.ADMIN:
            _ensure_another_admin(membership)
        _audit_membership(caller, AuditAction.MEMBERSHIP_REMOVE, membership, before=_membership_state(membership))
        membership.delete()


def _ensure_another_admin(membership: Membership) -> None:
    # Lock the team's admin rows so that two admins cannot demote each other at once.
    admins = list(
        Membership.objects.select_for_update()
        .filter(team_id=membership.team_id, role=Role.ADMIN)
        .values_list("id", flat=True)
    )
    if admins == [membership.id]:
        raise Conflict("A team must keep at least one admin; make someone else admin first.")


def _application_name(*, team: Team, name: str, exclude_id: int | None = None) -> str:
    """The name, stripped and checked (accounts.names), unique in the team ignoring case.

    Call inside the transaction that writes: the team row is locked so that two requests
    cannot both take a name that differs only in case.
    """
    name = name.strip()
    problem = application_name_problem(name)
    if problem is not None:
        raise ValidationFailed(problem, param="name")
    Team.objects.select_for_update().filter(pk=team.pk).first()
    taken = Application.objects.filter(team_id=team.pk, name__iexact=name)
    if exclude_id is not None:
        taken = taken.exclude(pk=exclude_id)
    existing = taken.values_list("name", "archived_at").first()
    if existing is not None:
        where = " (archived: restore or rename it)" if existing[1] is not None else ""
        raise Conflict(
            f"{team.name} already has an application named '{existing[0]}'{where}; names are unique "
            "in a team regardless of case.",
            param="name",
        )
    return name


def application_create(*, caller: Caller, team: Team, name: str, description: str = "") -> Application:
    caller.require_permission(roles.ADD_APPLICATION, team_id=team.id, action="create applications")
    with transaction.atomic():
        name = _application_name(team=team, name=name)
        application = Application.objects.create(team=team, name=name, description=description)
        _audit_application(caller, AuditAction.APPLICATION_CREATE, application, after=_application_state(application))
        return application


def application_update(
    *, caller: Caller, application: Application, name: str | None = None, description: str | None = None
) -> Application:
    caller.require_permission(
        roles.CHANGE_APPLICATION, team_id=application.team_id, obj=application, action="change this application"
    )
    before = _application_state(application)
    with transaction.atomic():
        if name is not None:
            name = _application_name(team=application.team, name=name, exclude_id=application.pk)
        if name is not None:
            application.name = name
        if description is not None:
            application.description = description
        application.save()
        _audit_application(
            caller, AuditAction.APPLICATION_UPDATE, application, before=before, after=_application_state(application)
        )
    return application


def _forget_application_keys(application: Application) -> None:
    # Every gateway process re-reads these keys on their next request (gateway.keys), and
    # api_key_authenticate refuses them while the application is archived.
    for prefix in ApiKey.objects.filter(application=application).values_list("prefix", flat=True):
        generation_bump_key(api_key_generation_key(prefix))


def application_archive(*, caller: Caller, application: Application) -> Application:
    """Archive: the application's keys stop working on their next request; it can be restored."""
    caller.require_permission(roles.ARCHIVE_APPLICATION, team_id=application.team_id, action="archive applications")
    if application.archived_at is not None:
        raise Conflict(f"The application '{application.name}' is already archived.")
    with transaction.atomic():
        application.archived_at = timezone.now()
        application.save(update_fields=["archived_at", "updated_at"])
        _forget_application_keys(application)
        _audit_application(
            caller,
            AuditAction.APPLICATION_ARCHIVE,
            application,
            before={"archived_at": None},
            after={"archived_at": application.archived_at},
        )
    logger.info("application archived", extra={"application_id": application.id, "actor": caller.label})
    return application


def application_restore(*, caller: Caller, application: Application) -> Application:
    """Undo an archive: the keys that are neither revoked nor expired work again."""
    caller.require_permission(roles.ARCHIVE_APPLICATION, team_id=application.team_id, action="restore applications")
    if application.archived_at is None:
        raise Conflict(f"The application '{application.name}' is not archived.")
    with transaction.atomic():
        before = {"archived_at": application.archived_at}
        application.archived_at = None
        application.save(update_fields=["archived_at", "updated_at"])
        _forget_application_keys(application)
        _audit_application(
            caller, AuditAction.APPLICATION_RESTORE, application, before=before, after={"archived_at": None}
        )
    return application


def application_delete(*, caller: Caller, application: Application) -> None:
    """Delete an application that never made a call; one with calls must be archived instead,
    so that its records keep their application."""
    caller.require_permission(roles.DELETE_APPLICATION, team_id=application.team_id, action="delete applications")
    with transaction.atomic():
        Application.objects.select_for_update().filter(pk=application.pk).first()
        calls = application_call_count(application_id=application.pk)
        if calls:
            raise Conflict(
                f"The application '{application.name}' has {calls} recorded call{'s' if calls != 1 else ''}; "
                "it cannot be deleted. Archive it instead: its keys stop working and its records stay.",
                code="application_has_calls",
            )
        _forget_application_keys(application)
        _audit_application(
            caller,
            AuditAction.APPLICATION_DELETE,
            application,
            before={**_application_state(application), "archived_at": application.archived_at},
        )
        application.delete()
    logger.info("application deleted", extra={"application_id": application.pk, "actor": caller.label})


def _application_state(application: Application) -> dict[str, str]:
    return {"name": application.name, "description": application.description}


def _audit_application(
    caller: Caller, action: str, application: Application, *, before: dict | None = None, after: dict | None = None
) -> None:
    audit_change(
        caller,
        action,
        application,
        team_id=application.team_id,
        application_id=application.id,
        before=before,
        after=after,
    )


def _audit_api_key(
    caller: Caller | None, action: str, api_key: ApiKey, *, before: dict | None = None, after: dict | None = None
) -> None:
    audit_change(
        caller,
        action,
        api_key,
        team_id=api_key.application.team_id,
        application_id=api_key.application_id,
        before=before,
        after=after,
    )


def api_key_create(
    *,
    caller: Caller | None,
    application: Application,
    name: str,
    role: str = Role.APPLICATION,
    clearance: int = Clearance.INTERNAL,
    expires_at: datetime.datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret; the secret is never retrievable again.

    `caller=None` is for trusted provisioning (management commands) only.
    """
    if caller is not None:
        caller.require_permission(
            roles.ADD_API_KEY, team_id=application.team_id, obj=application, action="create API keys"
        )
        _check_grantable(caller=caller, team_id=application.team_id, role=role, clearance=clearance, what="a key")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("expires_at must be in the future.", param="expires_at")
    if application.archived_at is not None:
        raise Conflict(f"The application '{application.name}' is archived; restore it before creating keys.")
    generated = keys.generate_secret()
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            application=application,
            name=name,
            prefix=generated.prefix,
            secret_hash=generated.secret_hash,
            role=role,
            clearance=clearance,
            expires_at=expires_at,
            created_by=caller.user if caller is not None else None,
        )
        after = {"name": name, "prefix": api_key.prefix, "role": role, "clearance": Clearance(clearance).label}
        _audit_api_key(caller, AuditAction.API_KEY_CREATE, api_key, after={**after, "expires_at": expires_at})
    logger.info("api key created", extra={"api_key_prefix": api_key.prefix, "application_id": application.id})
    return api_key, generated.secret


# Gateway processes cache authenticated keys under a generation token (gateway.keys), read
# before the key is looked up. Keys share a bounded number of tokens, picked by prefix: one
# token per prefix would let requests with made-up keys create shared-cache entries without
# bound, while a shared token only makes a revocation reload a few other keys.
_API_KEY_GENERATION_BUCKETS = 4096


def api_key_generation_key(prefix: str) -> str:
    """The generation token key that a change to the key with `prefix` bumps."""
    return f"accounts:api_key:generation:{zlib.crc32(prefix.encode()) % _API_KEY_GENERATION_BUCKETS}"


def api_key_revoke(*, caller: Caller | None, api_key: ApiKey) -> ApiKey:
    if caller is not None:
        caller.require_permission(
            roles.CHANGE_API_KEY,
            team_id=api_key.application.team_id,
            obj=api_key.application,
            action="revoke API keys",
        )
    if api_key.revoked_at is None:
        with transaction.atomic():
            api_key.revoked_at = timezone.now()
            api_key.revoked_by = caller.user if caller is not None else None
            api_key.save(update_fields=["revoked_at", "revoked_by", "updated_at"])
            generation_bump_key(api_key_generation_key(api_key.prefix))  # refused by the gateway's next request
            _audit_api_key(
                caller,
                AuditAction.API_KEY_REVOKE,
                api_key,
                before={"revoked_at": None},
                after={"revoked_at": api_key.revoked_at},
            )
        logger.info("api key revoked", extra={"api_key_prefix": api_key.prefix})
    return api_key


def api_key_authenticate(secret: str) -> ApiKey:
    """The active key for `secret`, or AuthenticationRequired saying what is wrong."""
    prefix = keys.parse_prefix(secret)
    if prefix is None:
        raise AuthenticationRequired(
            "The API key is malformed; send 'Authorization: Bearer cp_...' with a key created in Settings."
        )
    api_key = ApiKey.objects.select_related("application__team").filter(prefix=prefix).first()
    if api_key is None or not keys.secret_matches(secret, api_key.secret_hash):
        raise AuthenticationRequired("Incorrect API key provided; check the key or create a new one.")
    if api_key.is_revoked:
        raise AuthenticationRequired(
            f"This API key ({api_key.prefix}) was revoked; create a new key.", code="api_key_revoked"
        )
    if api_key.application.archived_at is not None:
        raise AuthenticationRequired(
            f"This API key ({api_key.prefix}) belongs to the archived application '{api_key.application.name}'; "
            "a team admin can restore it in Settings.",
            code="application_archived",
        )
    if api_key.is_expired:
        raise AuthenticationRequired(
            f"This API key ({api_key.prefix}) expired at {api_key.expires_at:%Y-%m-%dT%H:%M:%SZ}; create a new key.",
            code="api_key_expired",
        )
    api_key_touch(api_key)
    return api_key


def api_key_touch(api_key: ApiKey) -> None:
    """Record use, at most once per configured interval so that hot keys are not written per request."""
    now = timezone.now()
    resolution = datetime.timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is None or now - api_key.last_used_at >= resolution:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


def demo_environment_ensure(*, username: str, password: str) -> tuple[Application, str]:
    """Seed the demo team, application and admin; rotate the demo key. For `make run` only."""
    user_model = get_user_model()
    with transaction.atomic():
        user, _ = user_model.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
        user.is_staff = True
        user.is_superuser = True
        user.set_password(password)
        user.save()
        team, _ = Team.objects.get_or_create(name="Demo", defaults={"description": "Seeded by make run."})
        Membership.objects.update_or_create(
            user=user, team=team, defaults={"role": Role.ADMIN, "clearance": Clearance.RESTRICTED}
        )
        application, _ = Application.objects.get_or_create(
            team=team, name="demo-app", defaults={"description": "Seeded by make run."}
        )
        for old_key in ApiKey.objects.active().filter(application=application, name="demo"):
            api_key_revoke(caller=None, api_key=old_key)
        _, secret = api_key_create(caller=None, application=application, name="demo")
    return application, secret


def provisioning_key_create(
    *, team_name: str, application_name: str, role: str, clearance: int, name: str = "provisioned"
) -> str:
    """Create the team and application when missing, then a key. For `create_api_key`."""
    with transaction.atomic():
        team, _ = Team.objects.get_or_create(name=team_name)
        application, _ = Application.objects.get_or_create(team=team, name=application_name)
        _, secret = api_key_create(caller=None, application=application, name=name, role=role, clearance=clearance)
    return secret


# The column of auth.User.email and Invitation.email: Django's validator allows up to 320
# characters, which PostgreSQL would refuse with an error (a 500) rather than a message.
EMAIL_MAX_LENGTH = 254


def checked_email(email: str) -> str:
    """`email` stripped, if it is an address that fits the column; else ValidationFailed on `email`."""
    email = email.strip()
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValidationFailed(
            f"email has at most {EMAIL_MAX_LENGTH} characters; this one has {len(email)}.", param="email"
        )
    try:
        validate_email(email)
    except DjangoValidationError:
        raise ValidationFailed(f"'{email}' is not an email address.", param="email") from None
    return email


def user_create(
    *,
    caller: Caller | None,
    team: Team,
    username: str,
    email: str,
    role: str,
    clearance: int,
    password: str | None = None,
) -> tuple[Any, str | None]:
    """Create an account and make it a member of `team`; return it with the generated password
    when none was given (shown once, never stored in clear).

    Team admins may create accounts for their team, with a role and clearance no higher than
    their own. `caller=None` is for trusted provisioning (`manage.py createuser`) only.
    """
    if caller is not None:
        caller.require_permission(roles.CREATE_USER, team_id=team.id, action="create user accounts")
        _check_grantable(caller=caller, team_id=team.id, role=role, clearance=clearance, what="a new user")
    user_model = get_user_model()
    username = username.strip()
    try:
        user_model.username_validator(username)
        if not username or len(username) > 150:
            raise DjangoValidationError("Give a username of 1 to 150 characters.")
    except DjangoValidationError as error:
        raise ValidationFailed(f"username: {' '.join(error.messages)}", param="username") from None
    email = checked_email(email)
    generated = password is None
    if password is None:
        password = secrets.token_urlsafe(18)
    else:
        try:
            validate_password(password)
        except DjangoValidationError as error:
            raise ValidationFailed(f"password: {' '.join(error.messages)}", param="password") from None
    with transaction.atomic():
        if user_model.objects.filter(username__iexact=username).exists():
            raise Conflict(f"A user named '{username}' already exists; add them to the team instead.", param="username")
        user = user_model.objects.create_user(username=username, email=email, password=password)
        membership = Membership.objects.create(user=user, team=team, role=role, clearance=clearance)
        after = {"username": username, "email": email, **_membership_state(membership)}
        audit_change(caller, AuditAction.USER_CREATE, user, team_id=team.id, after=after)
    logger.info("user created", extra={"user_id": user.pk, "team_id": team.id})
    return user, password if generated else None
