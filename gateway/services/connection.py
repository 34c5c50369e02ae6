"""Testing a provider's connection: list its models through the `openai` SDK."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

import openai

from accounts.caller import Caller
from core import crypto, egress
from core.errors import ApplicationError
from gateway.models import Provider
from gateway.services.permissions import require_catalog_manager

logger = logging.getLogger(__name__)


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
