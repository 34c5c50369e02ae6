"""Writes to the catalog's providers. Every write calls `catalog_changed()` so that each
process's catalog cache reloads.

A provider's API key is write-only: stored encrypted (core.crypto), never returned, never
logged, and scrubbed from upstream error messages.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction

from accounts.caller import Caller
from compliance.services import VALUE_CHANGED, secret_state
from core import crypto, egress
from core.errors import Conflict, ValidationFailed
from gateway.catalog import catalog_changed
from gateway.models import Provider
from gateway.services.audit import audit_catalog
from gateway.services.fields import team_q, validate_name
from gateway.services.permissions import actor, require_catalog_manager

if TYPE_CHECKING:
    from accounts.models import Team

logger = logging.getLogger(__name__)

# (minimum, maximum) of each numeric provider setting; the model's validators say the same.
PROVIDER_LIMITS: dict[str, tuple[float, float]] = {
    "connect_timeout_seconds": (0.1, 60),
    "read_timeout_seconds": (0.1, 600),
    "max_retries": (0, 10),
    "retry_budget_seconds": (0, 300),
}


def _validate_base_url(value: str) -> str:
    if not value.strip():
        raise ValidationFailed("base_url is required, e.g. https://api.openai.com/v1.", param="base_url")
    url = value.strip().rstrip("/")
    if len(url) > 500:
        raise ValidationFailed("base_url must be at most 500 characters.", param="base_url")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except DjangoValidationError:
        raise ValidationFailed(
            f"base_url '{url}' is not an http(s) URL; give the OpenAI-compatible base URL, "
            "e.g. https://api.openai.com/v1 or http://127.0.0.1:8090/v1.",
            param="base_url",
        ) from None
    try:
        egress.check_url(url)
    except egress.EgressRefused as refused:
        raise ValidationFailed(f"base_url is not allowed: {refused.reason}", param="base_url") from None
    return url


def _validate_number(name: str, value: float) -> float:
    low, high = PROVIDER_LIMITS[name]
    if not math.isfinite(value):
        raise ValidationFailed(f"{name} must be a number from {low:g} to {high:g}.", param=name)
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be from {low:g} to {high:g}; {value:g} is out of range.", param=name)
    return value


def _validate_api_key(value: str) -> str:
    key = value.strip()
    if len(key) > 4000 or any(character.isspace() for character in key):
        raise ValidationFailed("api_key must be one token without spaces, at most 4000 characters.", param="api_key")
    return key


def _provider_settings(values: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name == "name":
            cleaned[name] = validate_name(value, max_length=100)
        elif name == "base_url":
            cleaned[name] = _validate_base_url(value)
        elif name == "max_retries":
            cleaned[name] = int(_validate_number(name, value))
        elif name in PROVIDER_LIMITS:
            cleaned[name] = float(_validate_number(name, value))
        elif name == "is_enabled":
            cleaned[name] = value
        else:  # pragma: no cover - a programming error, not input
            raise TypeError(f"unknown provider setting {name}")
    return cleaned


def _check_provider_name_free(*, team_id: int | None, name: str, exclude_id: int | None = None) -> None:
    taken = Provider.objects.filter(team_q(team_id), name=name)
    if exclude_id is not None:
        taken = taken.exclude(pk=exclude_id)
    if taken.exists():
        where = "the shared catalog" if team_id is None else "this team"
        raise Conflict(f"A provider named '{name}' already exists in {where}; pick another name.", param="name")


def provider_create(
    *,
    caller: Caller | None,
    team: Team | None,
    name: str,
    base_url: str,
    api_key: str = "",
    connect_timeout_seconds: float = 5.0,
    read_timeout_seconds: float = 60.0,
    max_retries: int = 2,
    retry_budget_seconds: float = 20.0,
    is_enabled: bool = True,
) -> Provider:
    team_id = team.id if team is not None else None
    require_catalog_manager(caller, team_id=team_id, action="add providers")
    values = _provider_settings(
        {
            "name": name,
            "base_url": base_url,
            "connect_timeout_seconds": connect_timeout_seconds,
            "read_timeout_seconds": read_timeout_seconds,
            "max_retries": max_retries,
            "retry_budget_seconds": retry_budget_seconds,
            "is_enabled": is_enabled,
        }
    )
    if "name" not in values:
        raise ValidationFailed("name is required.", param="name")
    if "base_url" not in values:
        raise ValidationFailed("base_url is required, e.g. https://api.openai.com/v1.", param="base_url")
    key = _validate_api_key(api_key)
    try:
        with transaction.atomic():
            _check_provider_name_free(team_id=team_id, name=values["name"])
            provider = Provider.objects.create(
                team=team, api_key_encrypted=crypto.encrypt(key) if key else "", **values
            )
            _audit_provider(caller, "provider.create", provider, before=None)
            catalog_changed()
    except IntegrityError:
        raise Conflict(
            f"A provider named '{values['name']}' already exists; pick another name.", param="name"
        ) from None
    logger.info(
        "provider created",
        extra={"provider_id": provider.id, "team_id": team_id, "has_api_key": bool(key), "actor": actor(caller)},
    )
    return provider


def provider_update(
    *,
    caller: Caller | None,
    provider: Provider,
    name: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    connect_timeout_seconds: float | None = None,
    read_timeout_seconds: float | None = None,
    max_retries: int | None = None,
    retry_budget_seconds: float | None = None,
    is_enabled: bool | None = None,
) -> Provider:
    """Change the given settings (None: unchanged). `api_key=""` removes the key."""
    require_catalog_manager(caller, team_id=provider.team_id, action="change providers")
    values = _provider_settings(
        {
            "name": name,
            "base_url": base_url,
            "connect_timeout_seconds": connect_timeout_seconds,
            "read_timeout_seconds": read_timeout_seconds,
            "max_retries": max_retries,
            "retry_budget_seconds": retry_budget_seconds,
            "is_enabled": is_enabled,
        }
    )
    before = _provider_audit_state(provider)
    changed = [field_name for field_name, value in values.items() if getattr(provider, field_name) != value]
    if api_key is not None:
        key = _validate_api_key(api_key)
        current = stored_key(provider)
        if key != current:
            provider.api_key_encrypted = crypto.encrypt(key) if key else ""
            changed.append("api_key_encrypted")
    if not changed:
        return provider
    for field_name in changed:
        if field_name in values:
            setattr(provider, field_name, values[field_name])
    try:
        with transaction.atomic():
            if "name" in changed:
                _check_provider_name_free(team_id=provider.team_id, name=provider.name, exclude_id=provider.id)
            provider.save(update_fields=[*changed, "updated_at"])
            _audit_provider(
                caller, "provider.update", provider, before=before, is_key_replaced="api_key_encrypted" in changed
            )
            catalog_changed()
    except IntegrityError:
        raise Conflict(f"A provider named '{provider.name}' already exists; pick another name.", param="name") from None
    logger.info(
        "provider changed",
        extra={
            "provider_id": provider.id,
            "changes": sorted("api_key" if name == "api_key_encrypted" else name for name in changed),
            "actor": actor(caller),
        },
    )
    return provider


def stored_key(provider: Provider) -> str | None:
    """The stored key, "" when none, None when it cannot be decrypted (the encryption key
    changed since): then any key given replaces it."""
    if not provider.api_key_encrypted:
        return ""
    try:
        return crypto.decrypt(provider.api_key_encrypted)
    except crypto.DecryptionFailed:
        return None


def provider_disable(*, caller: Caller | None, provider: Provider) -> Provider:
    """Disable, never delete: call records refer to providers and models by name."""
    return provider_update(caller=caller, provider=provider, is_enabled=False)


def _provider_audit_state(provider: Provider) -> dict[str, Any]:
    state = {name: getattr(provider, name) for name in ("name", "base_url", *PROVIDER_LIMITS, "is_enabled")}
    return {**state, "api_key": secret_state(provider.api_key_encrypted)}  # never the key


def _audit_provider(
    caller: Caller | None,
    action: str,
    provider: Provider,
    *,
    before: dict[str, Any] | None,
    is_key_replaced: bool = False,
) -> None:
    """A new key is recorded as "changed" (a removed one as "not set"), never by its value."""
    after = _provider_audit_state(provider)
    if is_key_replaced and provider.api_key_encrypted:
        after["api_key"] = VALUE_CHANGED
    audit_catalog(caller, action, provider, before=before, after=after)
