"""Normalising a request into the keys the cache matches on: scope, conversation and request hashes,
and the text a semantic match compares."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from gateway.semantic_cache.services.values import CacheConfig, CacheScope

# Request parameters that do not change the answer's content.
_IGNORED_PARAMS = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier"})
_KEPT_MESSAGE_FIELDS = ("role", "name", "content", "tool_calls", "tool_call_id", "function_call")
DEFAULT_TEMPERATURE = 1.0  # OpenAI's default when a request does not set one


def normalise_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters that change the answer: None values and transport-only keys dropped, keys sorted."""
    return {key: params[key] for key in sorted(params) if params[key] is not None and key not in _IGNORED_PARAMS}


def normalise_text(text: str) -> str:
    return " ".join(text.lower().split())


# The messages are the caller's JSON as the gateway received it: the checks below are about its
# shape (text or content parts), not a re-validation of typed input.
def _normalise_content(content: Any) -> Any:
    if isinstance(content, str):
        return normalise_text(content)
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append({"type": "text", "text": normalise_text(part["text"])})
            else:
                parts.append(part)
        return parts
    return content


def _normalise_message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    normalised = {key: message[key] for key in _KEPT_MESSAGE_FIELDS if message.get(key) is not None}
    if "content" in normalised:
        normalised["content"] = _normalise_content(normalised["content"])
    return normalised


def _sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def message_text(message: Any) -> str:
    """The text of a message (its string content or its text parts), white space collapsed."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return " ".join(content.split())
    if isinstance(content, list):
        texts = [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
        return " ".join(" ".join(texts).split())
    return ""


@dataclass(frozen=True)
class RequestKeys:
    scope_hash: str
    context_hash: str
    request_hash: str
    semantic_text: str | None  # the last user message; None: exact match only


def request_keys(*, scope: CacheScope, messages: list[dict[str, Any]]) -> RequestKeys:
    params = normalise_params(scope.params)
    scope_hash = _sha256(
        {
            "application": scope.application_id,
            "prompt_version": scope.prompt_version_id,
            "model": scope.model,
            "params": params,
        }
    )
    normalised = [_normalise_message(message) for message in messages]
    context_hash = _sha256({"scope": scope_hash, "messages": normalised[:-1]})
    request_hash = _sha256({"scope": scope_hash, "messages": normalised})
    last = messages[-1] if messages else None
    semantic_text = None
    if isinstance(last, dict) and last.get("role") == "user" and not last.get("tool_calls"):
        semantic_text = message_text(last) or None
    return RequestKeys(
        scope_hash=scope_hash, context_hash=context_hash, request_hash=request_hash, semantic_text=semantic_text
    )


def temperature_allowed(*, params: dict[str, Any], config: CacheConfig) -> bool:
    if config.cache_nonzero_temperature:
        return True
    temperature = params.get("temperature")
    try:
        value = float(temperature) if temperature is not None else DEFAULT_TEMPERATURE
    except (TypeError, ValueError):
        return False
    return value <= 0
