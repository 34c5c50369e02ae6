"""Writes to the model catalog (providers, models) and to application routing.

Every write calls `catalog_changed()` so that each process's catalog cache reloads.
Entries with a team are managed by that team's admins (`gateway.manage_catalog`);
shared entries (no team) by operators (superusers). `caller=None` is trusted
provisioning (seed_catalog, gateway_sync) and skips the permission checks.

A provider's API key is write-only: stored encrypted (core.crypto), never
returned, never logged, and scrubbed from upstream error messages.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts import roles
from accounts.caller import Caller
from accounts.models import Application, Team
from core import crypto, egress
from core.errors import ApplicationError, Conflict, PermissionDenied, ValidationFailed
from core.ids import parse_whole_number
from gateway.catalog import catalog_changed
from gateway.models import LanguageModel, ModelTier, Provider, RoutingPolicy, RoutingPolicyKind

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
MAX_FALLBACKS = 5
# (minimum, maximum) of each numeric provider setting; the model's validators say the same.
PROVIDER_LIMITS: dict[str, tuple[float, float]] = {
    "connect_timeout_seconds": (0.1, 60),
    "read_timeout_seconds": (0.1, 600),
    "max_retries": (0, 10),
    "retry_budget_seconds": (0, 300),
}
MAX_CONTEXT_WINDOW = 10_000_000


# Permissions -------------------------------------------------------------------------


def require_catalog_manager(caller: Caller | None, *, team_id: int | None, action: str) -> None:
    """Team entries: `gateway.manage_catalog` in that team. Shared entries: a superuser."""
    if caller is None:
        return
    if team_id is None:
        if caller.user is None or not caller.user.is_superuser:
            raise PermissionDenied(
                f"Only operators (superusers) can {action} in the shared catalog; "
                "a team admin can add the team's own providers and models instead."
            )
        return
    caller.require_permission(roles.MANAGE_CATALOG, team_id=team_id, action=action)


# Validation --------------------------------------------------------------------------


def _validate_name(value: Any, *, param: str = "name", max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{param} is required.", param=param)
    name = value.strip()
    if len(name) > max_length:
        raise ValidationFailed(f"{param} must be at most {max_length} characters.", param=param)
    if not NAME_PATTERN.match(name):
        raise ValidationFailed(
            f"{param} '{name}' may use letters, digits and . _ : / @ + - (starting with a letter or digit).",
            param=param,
        )
    return name


def _validate_base_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
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


def _validate_number(name: str, value: Any, *, integer: bool = False) -> float | int:
    low, high = PROVIDER_LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationFailed(f"{name} must be a number from {low:g} to {high:g}.", param=name)
    if integer and int(value) != value:
        raise ValidationFailed(f"{name} must be a whole number from {low:g} to {high:g}.", param=name)
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be from {low:g} to {high:g}; {value:g} is out of range.", param=name)
    return int(value) if integer else float(value)


def _validate_api_key(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationFailed("api_key must be a string.", param="api_key")
    key = value.strip()
    if len(key) > 4000 or any(character.isspace() for character in key):
        raise ValidationFailed("api_key must be one token without spaces, at most 4000 characters.", param="api_key")
    return key


def _validate_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed(f"{name} must be true or false.", param=name)
    return value


def model_names_visible_to(team_id: int | None) -> set[str]:
    """Model names a team's entries may refer to: its own and the shared ones (shared: shared only)."""
    scope = Q(team__isnull=True) if team_id is None else Q(team__isnull=True) | Q(team_id=team_id)
    return set(LanguageModel.objects.filter(scope).values_list("name", flat=True))


def _validate_fallbacks(
    value: Any, *, visible: set[str], own_name: str, param: str = "fallbacks", scope: str
) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ValidationFailed(f"{param} must be a list of model names, in the order to try them.", param=param)
    names = [item.strip() for item in value]
    if len(names) > MAX_FALLBACKS:
        raise ValidationFailed(f"{param} may name at most {MAX_FALLBACKS} models.", param=param)
    if len(set(names)) != len(names):
        raise ValidationFailed(f"{param} names a model twice; list each model once.", param=param)
    if own_name and own_name in names:
        raise ValidationFailed(f"{param} cannot name '{own_name}' itself.", param=param)
    unknown = [name for name in names if name not in visible]
    if unknown:
        raise ValidationFailed(
            f"{param}: no model named {', '.join(repr(name) for name in unknown)} in {scope}; "
            "add the model first or fix the name.",
            param=param,
        )
    return names


# Providers ---------------------------------------------------------------------------


def _team_q(team_id: int | None) -> Q:
    return Q(team__isnull=True) if team_id is None else Q(team_id=team_id)


def _provider_settings(values: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name == "name":
            cleaned[name] = _validate_name(value, max_length=100)
        elif name == "base_url":
            cleaned[name] = _validate_base_url(value)
        elif name == "max_retries":
            cleaned[name] = _validate_number(name, value, integer=True)
        elif name in PROVIDER_LIMITS:
            cleaned[name] = _validate_number(name, value)
        elif name == "is_enabled":
            cleaned[name] = _validate_bool(name, value)
        else:  # pragma: no cover - a programming error, not input
            raise TypeError(f"unknown provider setting {name}")
    return cleaned


def _check_provider_name_free(*, team_id: int | None, name: str, exclude_id: int | None = None) -> None:
    taken = Provider.objects.filter(_team_q(team_id), name=name)
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
        extra={"provider_id": provider.id, "team_id": team_id, "has_api_key": bool(key), "actor": _actor(caller)},
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
        current = _stored_key(provider)
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
            "actor": _actor(caller),
        },
    )
    return provider


def _stored_key(provider: Provider) -> str | None:
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


@dataclass(frozen=True)
class ConnectionCheck:
    is_ok: bool
    message: str
    models: list[str] = field(default_factory=list)
    status_code: int | None = None
    elapsed_ms: int = 0


def provider_test_connection(*, caller: Caller | None, provider: Provider) -> ConnectionCheck:
    """List the provider's models through the `openai` SDK with the provider's timeouts.

    Never raises for an upstream problem: the result says what went wrong. It never carries
    the upstream's reply itself (a `base_url` could point at a service that answers with
    something secret): only its status, a message of our own, and the model ids listed.
    The request passes the egress policy and follows no redirect.
    """
    import openai

    require_catalog_manager(caller, team_id=provider.team_id, action="test provider connections")
    started = time.monotonic()
    key = ""

    def elapsed() -> int:
        return round((time.monotonic() - started) * 1000)

    try:
        key = crypto.decrypt(provider.api_key_encrypted) if provider.api_key_encrypted else ""
        timeout = openai.Timeout(provider.read_timeout_seconds, connect=provider.connect_timeout_seconds)
        client = openai.OpenAI(
            base_url=provider.base_url,
            api_key=key or "no-key",  # the SDK insists on a key; local servers ignore it
            timeout=timeout,
            max_retries=0,
            http_client=egress.egress_client(timeout=timeout),
        )
        with client:
            names = sorted(model.id for model in client.models.list())
    except openai.APIStatusError as error:
        return ConnectionCheck(
            is_ok=False,
            message=f"The provider answered HTTP {error.status_code}. {_status_hint(error.status_code)}",
            status_code=error.status_code,
            elapsed_ms=elapsed(),
        )
    except openai.APITimeoutError:
        return ConnectionCheck(
            is_ok=False,
            message=f"No answer within the provider's timeouts (connect {provider.connect_timeout_seconds:g} s, "
            f"read {provider.read_timeout_seconds:g} s); check base_url or raise the timeouts.",
            elapsed_ms=elapsed(),
        )
    except openai.APIConnectionError as error:
        cause = str(error.__cause__ or error)
        if "egress policy" not in cause:  # the policy's reason is ours; anything else, only its kind
            cause = type(error.__cause__ or error).__name__
        return ConnectionCheck(
            is_ok=False,
            message=_scrub(f"Cannot connect to {provider.base_url}: {cause}", key),
            elapsed_ms=elapsed(),
        )
    except ApplicationError as error:  # e.g. a key that cannot be decrypted any more
        return ConnectionCheck(is_ok=False, message=error.message, elapsed_ms=elapsed())
    except Exception as error:  # noqa: BLE001 - any other failure is reported to the user, never a 500
        logger.warning("provider test failed", extra={"provider_id": provider.id, "error": type(error).__name__})
        return ConnectionCheck(
            is_ok=False,
            message="The provider's answer is not an OpenAI-compatible model list; check base_url "
            "(it usually ends in /v1).",
            elapsed_ms=elapsed(),
        )
    names = [name for name in names if MODEL_ID_PATTERN.match(name)]
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return ConnectionCheck(
        is_ok=True,
        message=f"Connected: {len(names)} model(s) listed" + (f": {shown}." if names else "."),
        models=names[:MAX_LISTED_MODELS],
        status_code=200,
        elapsed_ms=elapsed(),
    )


# A model id as providers spell them; anything else in a model list is not shown.
MODEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
MAX_LISTED_MODELS = 500


def _status_hint(status: int) -> str:
    if 300 <= status < 400:
        return "Redirects are not followed; give the final base_url."
    if status in (401, 403):
        return "Check the provider's API key."
    if status == 404:
        return "Check base_url (OpenAI-compatible servers usually end it in /v1)."
    if status == 429:
        return "The provider is rate limiting; try again later."
    if status >= 500:
        return "The provider is failing; try again later."
    return "Check base_url and the API key."


def _scrub(message: str, secret: str) -> str:
    if secret and len(secret) >= 4:
        message = message.replace(secret, "***")
    return message[:1000]


# Models ------------------------------------------------------------------------------


def _resolve_provider(value: Provider | int | str, *, team_id: int | None) -> Provider:
    """A provider the model's team may use: its own or a shared one (shared models: shared only)."""
    scope = Q(team__isnull=True) if team_id is None else Q(team__isnull=True) | Q(team_id=team_id)
    candidates = Provider.objects.filter(scope)
    where = "the shared catalog" if team_id is None else "this team or the shared catalog"
    if isinstance(value, Provider):
        if not candidates.filter(pk=value.pk).exists():
            raise ValidationFailed(f"Provider '{value.name}' is not in {where}.", param="provider")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise ValidationFailed("provider is required: the id or name of a provider.", param="provider")
    provider_id = value if isinstance(value, int) else parse_whole_number(value)
    if provider_id is not None:
        found = candidates.filter(pk=provider_id).first()
    else:
        # The team's own provider wins over a shared one of the same name.
        matches = sorted(candidates.filter(name=value), key=lambda provider: provider.team_id is None)
        found = matches[0] if matches else None
    if found is None:
        raise ValidationFailed(
            f"No provider '{value}' in {where}; add it first or fix the id or name.", param="provider"
        )
    return found


def _validate_model_fields(values: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name == "provider_model":
            if not isinstance(value, str) or not value.strip() or len(value.strip()) > 200:
                raise ValidationFailed(
                    "provider_model is required: the model id the provider expects (at most 200 characters).",
                    param=name,
                )
            cleaned[name] = value.strip()
        elif name == "context_window":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONTEXT_WINDOW:
                raise ValidationFailed(
                    f"context_window must be a whole number of tokens from 1 to {MAX_CONTEXT_WINDOW}.", param=name
                )
            cleaned[name] = value
        elif name == "tier":
            if value not in ModelTier.values:
                raise ValidationFailed(f"tier must be one of: {', '.join(ModelTier.values)}.", param=name)
            cleaned[name] = value
        elif name == "is_enabled":
            cleaned[name] = _validate_bool(name, value)
        else:  # pragma: no cover - a programming error, not input
            raise TypeError(f"unknown model setting {name}")
    return cleaned


@dataclass(frozen=True)
class Price:
    """USD per million tokens. `cached_input_per_million=None`: cached input costs the input price.
    `is_free`: the model costs nothing, said in so many words (every amount zero)."""

    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None = None
    is_free: bool = False


FREE = Price(input_per_million=Decimal(0), output_per_million=Decimal(0), is_free=True)


def price_from(
    *,
    input_per_million: Decimal | None,
    output_per_million: Decimal | None,
    cached_input_per_million: Decimal | None = None,
    is_free: bool | None = None,
) -> Price | None:
    """A price from optional form or API fields: none given -> None; input and output go together;
    `is_free` alone marks the model free (with amounts, they must be zero)."""
    amounts = (input_per_million, output_per_million, cached_input_per_million)
    if is_free:
        for name, value in zip(
            ("input_per_million", "output_per_million", "cached_input_per_million"), amounts, strict=True
        ):
            if value:
                raise ValidationFailed(
                    f"A free model costs nothing: leave {name} empty or zero, or unset is_free.", param=name
                )
        return FREE
    if all(value is None for value in amounts):
        return None
    for name, value in (("input_per_million", input_per_million), ("output_per_million", output_per_million)):
        if value is None:
            raise ValidationFailed(
                f"{name} is required with a price: give input_per_million and output_per_million "
                "(USD per million tokens), or is_free.",
                param=name,
            )
    for name, value in (
        ("input_per_million", input_per_million),
        ("output_per_million", output_per_million),
        ("cached_input_per_million", cached_input_per_million),
    ):
        if value is not None and value < 0:
            raise ValidationFailed(f"{name} must be zero or more (USD per million tokens).", param=name)
    return Price(
        input_per_million=Decimal(input_per_million or 0),  # both checked above; `or` is for mypy
        output_per_million=Decimal(output_per_million or 0),
        cached_input_per_million=cached_input_per_million,
    )


def model_price_current(*, model: LanguageModel) -> Price | None:
    """The catalog model's price in force now (None: it has none)."""
    from gateway.selectors import model_price

    current = model_price(model=model, at=timezone.now())
    if current is None:
        return None
    return Price(
        input_per_million=current.input_per_million,
        output_per_million=current.output_per_million,
        cached_input_per_million=current.cached_input_per_million,
        is_free=current.is_free,
    )


def _set_price(*, caller: Caller | None, model: LanguageModel, price: Price) -> bool:
    """Price the model from now on unless that is its price already (then nothing is written)."""
    from costs import services as costs_services

    if model_price_current(model=model) == price:
        return False
    costs_services.price_set(
        caller=caller,
        model=model,
        input_per_million=price.input_per_million,
        output_per_million=price.output_per_million,
        cached_input_per_million=price.cached_input_per_million,
        is_free=price.is_free,
        effective_from=timezone.now(),
    )
    return True


def model_create(
    *,
    caller: Caller | None,
    team: Team | None,
    name: str,
    provider: Provider | int | str,
    provider_model: str,
    context_window: int = 8192,
    tier: str = ModelTier.MEDIUM,
    fallbacks: Sequence[str] = (),
    is_enabled: bool = True,
    price: Price | None = None,
) -> LanguageModel:
    from costs import services as costs_services

    team_id = team.id if team is not None else None
    require_catalog_manager(caller, team_id=team_id, action="add models")
    model_name = _validate_name(name, max_length=200)
    values = _validate_model_fields(
        {"provider_model": provider_model, "context_window": context_window, "tier": tier, "is_enabled": is_enabled}
    )
    if "provider_model" not in values:
        raise ValidationFailed("provider_model is required: the model id the provider expects.", param="provider_model")
    resolved_provider = _resolve_provider(provider, team_id=team_id)
    scope = "the shared catalog" if team_id is None else "this team or the shared catalog"
    chain = _validate_fallbacks(
        list(fallbacks), visible=model_names_visible_to(team_id), own_name=model_name, scope=scope
    )
    try:
        with transaction.atomic():
            if LanguageModel.objects.filter(_team_q(team_id), name=model_name).exists():
                where = "the shared catalog" if team_id is None else "this team"
                raise Conflict(f"A model named '{model_name}' already exists in {where}.", param="name")
            model = LanguageModel.objects.create(
                team=team, name=model_name, provider=resolved_provider, fallbacks=chain, **values
            )
            _audit_catalog(caller, "model.create", model, before=None, after=_model_audit_state(model))
            # A new name may shadow a shared one for the team, and a shared model takes over the
            # list prices of its name: either way every process's price table reloads.
            if team is None:
                costs_services.list_prices_adopt(model=model)
            else:
                costs_services.prices_changed()
            if price is not None:
                _set_price(caller=caller, model=model, price=price)
            catalog_changed()
    except IntegrityError:
        raise Conflict(f"A model named '{model_name}' already exists.", param="name") from None
    logger.info("model created", extra={"model_id": model.id, "team_id": team_id, "actor": _actor(caller)})
    return model


def model_update(
    *,
    caller: Caller | None,
    model: LanguageModel,
    provider: Provider | int | str | None = None,
    provider_model: str | None = None,
    context_window: int | None = None,
    tier: str | None = None,
    fallbacks: Sequence[str] | None = None,
    is_enabled: bool | None = None,
    price: Price | None = None,
) -> LanguageModel:
    """Change the given settings (None: unchanged). The name is fixed: calls are recorded by name."""
    require_catalog_manager(caller, team_id=model.team_id, action="change models")
    values = _validate_model_fields(
        {"provider_model": provider_model, "context_window": context_window, "tier": tier, "is_enabled": is_enabled}
    )
    if provider is not None:
        resolved = _resolve_provider(provider, team_id=model.team_id)
        values["provider_id"] = resolved.id
    if fallbacks is not None:
        scope = "the shared catalog" if model.team_id is None else "this team or the shared catalog"
        values["fallbacks"] = _validate_fallbacks(
            list(fallbacks), visible=model_names_visible_to(model.team_id), own_name=model.name, scope=scope
        )
    changed = [name for name, value in values.items() if getattr(model, name) != value]
    with transaction.atomic():
        if changed:
            before = _model_audit_state(model)
            for name in changed:
                setattr(model, name, values[name])
            model.save(update_fields=[*changed, "updated_at"])
            _audit_catalog(caller, "model.update", model, before=before, after=_model_audit_state(model))
        if price is not None:
            _set_price(caller=caller, model=model, price=price)
        if changed or price is not None:
            catalog_changed()
    if changed:
        logger.info("model changed", extra={"model_id": model.id, "changes": sorted(changed), "actor": _actor(caller)})
    return model


def model_disable(*, caller: Caller | None, model: LanguageModel) -> LanguageModel:
    """Disable, never delete: call records refer to models by name."""
    return model_update(caller=caller, model=model, is_enabled=False)


# Routing -----------------------------------------------------------------------------


def _validate_threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) or not math.isfinite(value):
        raise ValidationFailed("threshold must be a number from 0 to 1.", param="threshold")
    if not 0 <= value <= 1:
        raise ValidationFailed(
            f"threshold must be from 0 to 1 (a complexity score); {float(value):g} is out of range.", param="threshold"
        )
    return float(value)


def _validate_max_price(value: Any, *, policy: str) -> Decimal | None:
    if value is None:
        if policy == RoutingPolicyKind.COST_CAP:
            raise ValidationFailed(
                "max_price is required for the cost_cap policy: the highest output price allowed, "
                "in USD per million output tokens.",
                param="max_price",
            )
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValidationFailed("max_price must be a number of USD per million output tokens.", param="max_price")
    price = Decimal(str(value)) if not isinstance(value, Decimal) else value
    if not price.is_finite() or price < 0 or price >= Decimal("1000000"):
        raise ValidationFailed(
            "max_price must be from 0 to 999999 USD per million output tokens (not negative).", param="max_price"
        )
    return price.quantize(Decimal("0.000001"))


def _validate_tiers(value: Any, *, policy: str, visible: set[str]) -> dict[str, str]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValidationFailed("tiers must be an object {small, medium, large} of model names.", param="tiers")
    unknown_keys = sorted(str(key) for key in value if key not in ModelTier.values)
    if unknown_keys:
        raise ValidationFailed(
            f"tiers: unknown tier {', '.join(unknown_keys)}; use small, medium and large.", param="tiers"
        )
    tiers: dict[str, str] = {}
    for tier in ModelTier.values:
        name = value.get(tier)
        param = f"tiers.{tier}"
        if name is None or name == "":
            continue
        if not isinstance(name, str):
            raise ValidationFailed(f"{param} must be a model name.", param=param)
        name = name.strip()
        if name not in visible:
            raise ValidationFailed(
                f"{param}: no model named '{name}' in this team or the shared catalog; "
                "add the model first or fix the name.",
                param=param,
            )
        tiers[tier] = name
    if policy == RoutingPolicyKind.COMPLEXITY:
        for tier in (ModelTier.SMALL, ModelTier.LARGE):
            if tier.value not in tiers:
                raise ValidationFailed(
                    f"tiers.{tier.value} is required for the complexity policy: name the model that answers "
                    f"{'simple' if tier == ModelTier.SMALL else 'hard'} queries.",
                    param=f"tiers.{tier.value}",
                )
    if policy == RoutingPolicyKind.COST_CAP and not tiers:
        raise ValidationFailed(
            "tiers: the cost_cap policy needs at least one tier model to send calls to when the requested "
            "model is above max_price.",
            param="tiers",
        )
    return tiers


def _check_cap_reachable(tiers: dict[str, str], max_price: Decimal, *, team_id: int) -> None:
    from gateway.routing import output_price

    now = timezone.now()
    prices = {name: output_price(name, team_id=team_id, at=now) for name in tiers.values()}
    if not any(price is not None and price <= max_price for price in prices.values()):
        listed = ", ".join(
            f"{name} {'$' + format(price.normalize(), 'f') if price is not None else 'no price'}"
            for name, price in prices.items()
        )
        raise ValidationFailed(
            f"max_price: no tier model has an output price within ${format(max_price.normalize(), 'f')} "
            f"per million tokens ({listed}); raise max_price or add a cheaper tier.",
            param="max_price",
        )


@dataclass(frozen=True)
class CheckedRouting:
    policy: str
    model: str
    fallbacks: list[str]
    tiers: dict[str, str]
    threshold: float
    max_price: Decimal | None


def routing_check(
    *,
    application: Application,
    policy: str = RoutingPolicyKind.FIXED,
    model: str = "",
    fallbacks: Sequence[str] = (),
    tiers: dict[str, Any] | None = None,
    threshold: float | None = None,
    max_price: Decimal | float | None = None,
) -> CheckedRouting:
    """Validate a routing policy for the application without saving it (ValidationFailed names
    the field). routing_set saves what it returns; the simulation page replays it."""
    from gateway.routing import DEFAULT_THRESHOLD

    if policy not in RoutingPolicyKind.values:
        raise ValidationFailed(f"policy must be one of: {', '.join(RoutingPolicyKind.values)}.", param="policy")
    visible = model_names_visible_to(application.team_id)
    if not isinstance(model, str):
        raise ValidationFailed("model must be a model name (or empty for the requested model).", param="model")
    model_name = model.strip()
    if model_name and model_name not in visible:
        raise ValidationFailed(
            f"model: no model named '{model_name}' in this team or the shared catalog; "
            "add the model first or fix the name.",
            param="model",
        )
    tier_names = _validate_tiers(tiers, policy=policy, visible=visible)
    threshold_value = DEFAULT_THRESHOLD if threshold is None else _validate_threshold(threshold)
    cap = _validate_max_price(max_price, policy=policy)
    if policy == RoutingPolicyKind.COST_CAP and cap is not None:
        _check_cap_reachable(tier_names, cap, team_id=application.team_id)
    chain = _validate_fallbacks(
        list(fallbacks) if fallbacks is not None else [],
        visible=visible,
        own_name=model_name,
        scope="this team or the shared catalog",
    )
    return CheckedRouting(
        policy=policy, model=model_name, fallbacks=chain, tiers=tier_names, threshold=threshold_value, max_price=cap
    )


def routing_set(
    *,
    caller: Caller | None,
    application: Application,
    policy: str = RoutingPolicyKind.FIXED,
    model: str = "",
    fallbacks: Sequence[str] = (),
    tiers: dict[str, Any] | None = None,
    threshold: float | None = None,
    max_price: Decimal | float | None = None,
) -> RoutingPolicy:
    """Replace how the application's calls pick a model (see RoutingPolicy for the policies):
    `fixed` uses `model` (when set, overriding the requested one); `complexity` picks a tier of
    `tiers` by the query's complexity score against `threshold`; `cost_cap` never routes above
    `max_price` (USD per million output tokens). Then the fallback chain."""
    if caller is not None:
        caller.require_permission(
            roles.CHANGE_APPLICATION,
            team_id=application.team_id,
            obj=application,
            action="change this application's routing",
        )
    checked = routing_check(
        application=application,
        policy=policy,
        model=model,
        fallbacks=fallbacks,
        tiers=tiers,
        threshold=threshold,
        max_price=max_price,
    )
    policy, model_name, chain = checked.policy, checked.model, checked.fallbacks
    tier_names, threshold_value, cap = checked.tiers, checked.threshold, checked.max_price
    wanted = (policy, model_name, chain, tier_names, threshold_value, cap)
    with transaction.atomic():
        routing, created = RoutingPolicy.objects.select_for_update().get_or_create(application=application)
        current = (
            routing.policy,
            routing.model,
            routing.fallbacks,
            routing.tiers,
            routing.threshold,
            routing.max_price,
        )
        changed = created or current != wanted
        if changed:
            before = None if created else _routing_audit_state(routing)
            (
                routing.policy,
                routing.model,
                routing.fallbacks,
                routing.tiers,
                routing.threshold,
                routing.max_price,
            ) = wanted
            routing.save()
            _audit_routing(caller, application, before=before, after=_routing_audit_state(routing))
            catalog_changed()
    if changed:
        logger.info(
            "routing changed", extra={"application_id": application.id, "policy": policy, "actor": _actor(caller)}
        )
    return routing


def _actor(caller: Caller | None) -> str:
    return caller.label if caller is not None else "system"


# Audit: every change to providers, models and routing, with before and after -------------


def _provider_audit_state(provider: Provider) -> dict[str, Any]:
    from compliance.services import secret_state

    state = {name: getattr(provider, name) for name in ("name", "base_url", *PROVIDER_LIMITS, "is_enabled")}
    return {**state, "api_key": secret_state(provider.api_key_encrypted)}  # never the key


def _model_audit_state(model: LanguageModel) -> dict[str, Any]:
    return {"name": model.name, **_model_state(model)}


def _routing_audit_state(routing: RoutingPolicy) -> dict[str, Any]:
    return {
        "policy": routing.policy,
        "model": routing.model,
        "fallbacks": list(routing.fallbacks),
        "tiers": dict(routing.tiers),
        "threshold": routing.threshold,
        "max_price": routing.max_price,
    }


def _audit_catalog(
    caller: Caller | None,
    action: str,
    entry: Provider | LanguageModel,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    from compliance.services import audit_change

    audit_change(
        actor=caller,
        action=action,
        target_type=f"gateway.{entry._meta.model_name}",
        target_id=entry.pk,
        team_id=entry.team_id,
        before=before,
        after=after,
        metadata={"name": entry.name},
    )


def _audit_provider(
    caller: Caller | None,
    action: str,
    provider: Provider,
    *,
    before: dict[str, Any] | None,
    is_key_replaced: bool = False,
) -> None:
    """A new key is recorded as "changed" (a removed one as "not set"), never by its value."""
    from compliance.services import VALUE_CHANGED

    after = _provider_audit_state(provider)
    if is_key_replaced and provider.api_key_encrypted:
        after["api_key"] = VALUE_CHANGED
    _audit_catalog(caller, action, provider, before=before, after=after)


def _audit_routing(
    caller: Caller | None, application: Application, *, before: dict[str, Any] | None, after: dict[str, Any]
) -> None:
    from compliance.services import audit_change

    audit_change(
        actor=caller,
        action="routing.update",
        target_type="accounts.application",
        target_id=application.id,
        team_id=application.team_id,
        application_id=application.id,
        before=before,
        after=after,
        metadata={"application": application.name},
    )


# Configuration as code (seed_catalog, gateway_sync) -------------------------------------


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    base_url: str
    api_key: str | None = None  # None: leave the stored key as it is
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 60.0
    max_retries: int = 2
    retry_budget_seconds: float = 20.0
    is_enabled: bool = True


@dataclass(frozen=True)
class ModelSpec:
    name: str
    provider: str
    provider_model: str
    context_window: int = 8192
    tier: str = ModelTier.MEDIUM
    fallbacks: tuple[str, ...] = ()
    is_enabled: bool = True
    price: Price | None = None


@dataclass(frozen=True)
class RoutingSpec:
    application: str
    team: str | None = None  # the application's team by name; default: the catalog's team
    policy: str = RoutingPolicyKind.FIXED
    model: str = ""
    fallbacks: tuple[str, ...] = ()
    only_if_unset: bool = False  # seed defaults without overwriting a choice made since


class CatalogEntryError(Exception):
    """An entry of a catalog file is invalid: `section` ("providers", "models", "routing"),
    its `index` there, and the domain error (whose `param` names the field)."""

    def __init__(self, section: str, index: int, error: ApplicationError) -> None:
        super().__init__(error.message)
        self.section = section
        self.index = index
        self.error = error


class _DryRun(Exception):
    pass


def _provider_state(provider: Provider) -> dict[str, Any]:
    state = {name: getattr(provider, name) for name in ("base_url", *PROVIDER_LIMITS, "is_enabled")}
    state["api_key"] = _stored_key(provider)
    return state


def _model_state(model: LanguageModel) -> dict[str, Any]:
    state = {name: getattr(model, name) for name in ("provider_id", "provider_model", "context_window", "tier")}
    return {**state, "fallbacks": list(model.fallbacks), "is_enabled": model.is_enabled}


def _describe(kind: str, name: str, before: dict[str, Any] | None, after: dict[str, Any]) -> tuple[str, bool]:
    if before is None:
        return f"{kind} {name}: created", True
    changed = sorted(key for key in after if before.get(key) != after[key])
    if not changed:
        return f"{kind} {name}: unchanged", False
    return f"{kind} {name}: updated ({', '.join(changed)})", True


def catalog_apply(
    *,
    team: Team | None,
    providers: Sequence[ProviderSpec] = (),
    models: Sequence[ModelSpec] = (),
    routing: Sequence[RoutingSpec] = (),
    is_dry_run: bool = False,
) -> tuple[list[str], int]:
    """Create or update the given entries of `team`'s catalog (None: shared), all or nothing.

    Trusted provisioning (management commands): no permission checks. Entries not named
    are left alone. Returns one line per entry and the number of changes.
    """
    lines: list[str] = []
    changes = 0
    try:
        with transaction.atomic():
            for index, spec in enumerate(providers):
                try:
                    line, is_change = _apply_provider(team, spec)
                except ApplicationError as error:
                    raise CatalogEntryError("providers", index, error) from None
                lines.append(line)
                changes += is_change
            # Two passes so that models may name each other as fallbacks in any order.
            existing = {
                model.name: model
                for model in LanguageModel.objects.filter(team=team, name__in=[m.name for m in models])
            }
            before = {name: _model_state(model) for name, model in existing.items()}
            for index, model_spec in enumerate(models):
                if model_spec.name not in existing:
                    try:
                        existing[model_spec.name] = model_create(
                            caller=None,
                            team=team,
                            name=model_spec.name,
                            provider=model_spec.provider,
                            provider_model=model_spec.provider_model,
                            context_window=model_spec.context_window,
                            tier=model_spec.tier,
                            is_enabled=model_spec.is_enabled,
                        )
                    except ApplicationError as error:
                        raise CatalogEntryError("models", index, error) from None
            for index, model_spec in enumerate(models):
                model = existing[model_spec.name]
                try:
                    model_update(
                        caller=None,
                        model=model,
                        provider=model_spec.provider,
                        provider_model=model_spec.provider_model,
                        context_window=model_spec.context_window,
                        tier=model_spec.tier,
                        fallbacks=list(model_spec.fallbacks),
                        is_enabled=model_spec.is_enabled,
                    )
                    price_changed = model_spec.price is not None and _set_price(
                        caller=None, model=model, price=model_spec.price
                    )
                except ApplicationError as error:
                    raise CatalogEntryError("models", index, error) from None
                old_state = before.get(model_spec.name)
                line, is_change = _describe(
                    "model",
                    model_spec.name,
                    {**old_state, "price": int(price_changed)} if old_state is not None else None,
                    {**_model_state(model), "price": 0},
                )
                lines.append(line)
                changes += is_change
            for index, routing_spec in enumerate(routing):
                try:
                    line, is_change = _apply_routing(team, routing_spec)
                except ApplicationError as error:
                    raise CatalogEntryError("routing", index, error) from None
                lines.append(line)
                changes += is_change
            if is_dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return lines, changes


def _apply_provider(team: Team | None, spec: ProviderSpec) -> tuple[str, bool]:
    settings: dict[str, Any] = {
        "base_url": spec.base_url,
        "connect_timeout_seconds": spec.connect_timeout_seconds,
        "read_timeout_seconds": spec.read_timeout_seconds,
        "max_retries": spec.max_retries,
        "retry_budget_seconds": spec.retry_budget_seconds,
        "is_enabled": spec.is_enabled,
    }
    provider = Provider.objects.filter(team=team, name=spec.name).first()
    if provider is None:
        provider_create(caller=None, team=team, name=spec.name, api_key=spec.api_key or "", **settings)
        return f"provider {spec.name}: created", True
    before = _provider_state(provider)
    provider_update(caller=None, provider=provider, api_key=spec.api_key, **settings)
    return _describe("provider", spec.name, before, _provider_state(provider))


def _apply_routing(team: Team | None, spec: RoutingSpec) -> tuple[str, bool]:
    team_name = spec.team or (team.name if team is not None else None)
    if not team_name:
        raise ValidationFailed("team is required for routing in the shared catalog (or pass --team).", param="team")
    application = Application.objects.filter(team__name=team_name, name=spec.application).first()
    if application is None:
        raise ValidationFailed(f"No application '{spec.application}' in team '{team_name}'.", param="application")
    label = f"routing {team_name}/{spec.application}"
    current = RoutingPolicy.objects.filter(application=application).first()
    if current is not None and spec.only_if_unset:
        return f"{label}: unchanged (already set)", False
    before = (current.policy, current.model, list(current.fallbacks)) if current is not None else None
    routing = routing_set(
        caller=None, application=application, policy=spec.policy, model=spec.model, fallbacks=list(spec.fallbacks)
    )
    after = (routing.policy, routing.model, list(routing.fallbacks))
    if before is None:
        return f"{label}: created", True
    return (f"{label}: unchanged", False) if before == after else (f"{label}: updated", True)
