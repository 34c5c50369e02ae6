"""API key authentication for the gateway's hot path: one indexed lookup per key, then
served from a per-process cache.

A cached key is checked against a generation token (core.generation_cache) that
accounts.services.api_key_revoke bumps, so a revoked key is refused by every process on its
next request step; inside a warm request step the check costs no shared-cache read beyond
the step's epoch. The token is read before the database, so a key's old state is never
stored under a token written after it changed. Expiry is checked on every use.
GATEWAY_KEY_CACHE_SECONDS still bounds how long an entry lives: how stale the key's
last-used time and the application's name can get. While the shared cache is unavailable the
token changes every SHARED_CACHE_FALLBACK_TTL_SECONDS, so a key is read from the database at
most that often per process (and a revocation, refused meanwhile, cannot be missed).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from accounts import keys as key_secrets
from accounts import roles
from accounts.caller import Caller, caller_for_api_key
from accounts.services import api_key_authenticate, api_key_generation_key
from core.errors import AuthenticationRequired, PermissionDenied
from core.generation_cache import generation_token


@dataclass(frozen=True)
class KeyContext:
    caller: Caller
    api_key_id: int
    application_id: int
    application_name: str
    team_id: int
    role: str
    clearance: int


_lock = threading.Lock()
_cache: dict[str, tuple[float, str, KeyContext]] = {}  # secret hash -> (expires, generation, context)


def authenticate(authorization: str) -> KeyContext:
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if not authorization:
        raise AuthenticationRequired(
            "You didn't provide an API key. Send 'Authorization: Bearer <API key>'.", code="missing_api_key"
        )
    if scheme.lower() != "bearer" or not secret or " " in secret:
        raise AuthenticationRequired("The Authorization header is malformed; send 'Authorization: Bearer <API key>'.")
    digest = key_secrets.secret_hash(secret)
    # Before the database: a key's old state is never cached under a token written after it changed.
    generation = generation_token(api_key_generation_key(key_secrets.parse_prefix(secret) or ""))
    now = time.monotonic()
    cached = _cache.get(digest)
    if cached is not None and cached[0] > now and cached[1] == generation:
        context = cached[2]
        api_key = context.caller.api_key
        if api_key is not None and api_key.expires_at is not None and api_key.expires_at <= timezone.now():
            raise AuthenticationRequired(
                f"This API key ({api_key.prefix}) expired; create a new key.", code="api_key_expired"
            )
        return context
    api_key = api_key_authenticate(secret)
    caller = caller_for_api_key(api_key)
    team_id = api_key.application.team_id
    if not caller.has_permission(roles.INVOKE_APPLICATION, team_id=team_id):
        raise PermissionDenied(
            f"This key's role ({api_key.role}) cannot call models; use a key with the 'application' role."
        )
    context = KeyContext(
        caller=caller,
        api_key_id=api_key.id,
        application_id=api_key.application_id,
        application_name=api_key.application.name,
        team_id=team_id,
        role=api_key.role,
        clearance=api_key.clearance,
    )
    with _lock:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[digest] = (now + settings.GATEWAY_KEY_CACHE_SECONDS, generation, context)
    return context


def forget_all() -> None:
    with _lock:
        _cache.clear()
