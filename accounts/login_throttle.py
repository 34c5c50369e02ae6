"""Password logins throttled per account and per client address, in the shared cache.

Every failed password login counts against the account (the username tried, known or not)
and against the client's address. LOGIN_FAILURES_PER_ACCOUNT failures within
LOGIN_FAILURE_WINDOW_SECONDS lock the account out of password logins for
LOGIN_LOCKOUT_SECONDS; LOGIN_FAILURES_PER_ADDRESS failures (more: an office behind one
address shares it) lock the address out the same way. While locked out the password is not
even checked, so guessing goes no further; the lockout expires by itself, and each one is an
audit event (`auth.lockout`). A successful login clears the account's failures.

django-axes was considered: it compares the largest of its per-parameter counters with one
limit, so an address cannot be allowed more failures than an account.

Only password logins go through here (the login page and the admin's); sessions and API keys
are unaffected. The address is REMOTE_ADDR (behind a proxy, run uvicorn with
`--forwarded-allow-ips` so that it is the client's), as in the audit trail.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import timezone

from accounts.hooks import AuditAction, audit_event
from accounts.selectors import team_ids_of_user
from core.requests import request_context

logger = logging.getLogger(__name__)

_PREFIX = "login-throttle"


@dataclass(frozen=True)
class Lockout:
    scope: str  # "account" or "address"
    until: datetime.datetime

    @property
    def message(self) -> str:
        seconds = max(1, round((self.until - timezone.now()).total_seconds()))
        who = "this account" if self.scope == "account" else "your address"
        return f"Too many failed logins for {who}: try again after {self.until:%H:%M:%S} UTC (in {_duration(seconds)})."

    @property
    def retry_after_seconds(self) -> int:
        return max(1, int((self.until - timezone.now()).total_seconds()) + 1)


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{-(-seconds // 60)} minutes"


def _keys(scope: str, value: str) -> tuple[str, str]:
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # bounded keys; no username in the cache
    return f"{_PREFIX}:{scope}:failures:{digest}", f"{_PREFIX}:{scope}:locked:{digest}"


def _subjects(*, username: str, address: str) -> list[tuple[str, str, int]]:
    subjects = [("account", username.strip().casefold(), settings.LOGIN_FAILURES_PER_ACCOUNT)]
    if address:
        subjects.append(("address", address, settings.LOGIN_FAILURES_PER_ADDRESS))
    return subjects


def client_address(request: HttpRequest) -> str:
    return request_context(request)[1]


def login_lockout(*, username: str, address: str) -> Lockout | None:
    """The lockout in force for this account or address, if any (one cache round trip)."""
    lock_keys = {_keys(scope, value)[1]: scope for scope, value, _ in _subjects(username=username, address=address)}
    now = timezone.now()
    for key, until in cache.get_many(list(lock_keys)).items():
        if isinstance(until, datetime.datetime) and until > now:
            return Lockout(scope=lock_keys[key], until=until)
    return None


def login_failure_record(*, username: str, request: HttpRequest) -> Lockout | None:
    """Count a failed password login; lock the account or the address out when it reaches its limit."""
    address = client_address(request)
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    lockout: Lockout | None = None
    for scope, value, limit in _subjects(username=username, address=address):
        failures_key, lock_key = _keys(scope, value)
        if cache.add(failures_key, 1, timeout=window):
            failures = 1
        else:
            try:
                failures = cache.incr(failures_key)
            except ValueError:  # expired between add and incr
                cache.add(failures_key, 1, timeout=window)
                failures = 1
        if failures < limit:
            continue
        until = timezone.now() + datetime.timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
        cache.set(lock_key, until, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        cache.delete(failures_key)  # after the lockout, the count starts again
        lockout = lockout or Lockout(scope=scope, until=until)
        _audit_lockout(scope=scope, username=username, failures=failures, until=until, request=request)
    return lockout


def login_success_record(*, username: str) -> None:
    cache.delete(_keys("account", username.strip().casefold())[0])


def _audit_lockout(*, scope: str, username: str, failures: int, until: datetime.datetime, request: HttpRequest) -> None:
    user_model = get_user_model()
    user_id = (
        user_model.objects.filter(**{f"{user_model.USERNAME_FIELD}__iexact": username.strip()})
        .values_list("pk", flat=True)
        .first()
        if scope == "account"
        else None
    )
    # An account's lockout is seen by its teams' compliance officers; an address's by operators.
    team_ids: list[int | None] = list(team_ids_of_user(user_id=user_id)) if user_id is not None else []
    for team_id in team_ids or [None]:
        audit_event(
            actor=None,
            action=AuditAction.LOCKOUT,
            target_type="auth.user" if scope == "account" else "auth.address",
            target_id=str(user_id or "") if scope == "account" else client_address(request),
            team_id=team_id,
            request=request,
            metadata={
                "scope": scope,
                "username": username[:150],
                "failures": failures,
                "locked_until": until.isoformat(),
            },
        )
    logger.warning("login lockout", extra={"scope": scope, "locked_until": until.isoformat()})


class ThrottledLoginMixin:
    """For Django's authentication forms: refuse a locked-out account or address before the
    password is checked, count each wrong password, and clear the account's count on success."""

    request: HttpRequest | None
    cleaned_data: dict[str, Any]
    lockout: Lockout | None = None

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        if not (username and self.cleaned_data.get("password")) or self.request is None:
            return super().clean()  # type: ignore[misc]  # Django reports the missing field
        self.lockout = login_lockout(username=username, address=client_address(self.request))
        if self.lockout is not None:
            raise ValidationError(self.lockout.message, code="locked_out")
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]  # AuthenticationForm.clean
        except ValidationError as error:
            if error.code == "invalid_login":
                self.lockout = login_failure_record(username=username, request=self.request)
                if self.lockout is not None:
                    raise ValidationError(self.lockout.message, code="locked_out") from None
            raise
        login_success_record(username=username)
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
