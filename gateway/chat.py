"""Validation of OpenAI chat completion requests, with the gateway's extensions.

Parameters the gateway does not interpret are passed to the provider unchanged; parameters
OpenAI does not know are refused, naming them, as OpenAI does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from core.classification import Clearance
from core.errors import ValidationFailed
from core.limits import check_count, check_text, path_text

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
# Passed through to the provider as they are (checked for type where cheap).
PASS_THROUGH = {
    "temperature",
    "top_p",
    "n",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "reasoning_effort",
    "service_tier",
    "store",
    "modalities",
    "prediction",
    "audio",
    "web_search_options",
    "verbosity",
    "prompt_cache_key",
    "safety_identifier",
}
GATEWAY_FIELDS = {"model", "messages", "stream", "stream_options", "user", "metadata", "prompt", "documents"}
ALLOWED = PASS_THROUGH | GATEWAY_FIELDS

# How deeply arrays and objects may nest in a request body. The deepest legitimate shapes (a
# tool's JSON schema, a structured content part) stay far below; the record of the call and the
# body sent to the provider are serialised by orjson, which refuses structures deeper than 254
# levels (a 500 after the budget was reserved, before this limit).
MAX_NESTING_DEPTH = 64

_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
}


@dataclass
class PromptReference:
    name: str
    label: str | None
    version: int | None
    variables: dict[str, Any]


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    user: str
    metadata: dict[str, Any]
    params: dict[str, Any]  # everything passed through to the provider
    prompt: PromptReference | None = None
    documents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def max_output_tokens(self) -> int | None:
        value = self.params.get("max_completion_tokens", self.params.get("max_tokens"))
        return value if isinstance(value, int) else None


def _fail(message: str, param: str) -> ValidationFailed:
    return ValidationFailed(message, param=param)


def _messages(value: Any, *, param: str, allow_empty: bool) -> list[dict[str, Any]]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise _fail(
            f'\'{param}\' must be a non-empty array of messages like {{"role": "user", "content": "..."}}.', param
        )
    for index, message in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(message, dict):
            raise _fail(f"{where} must be an object with 'role' and 'content'.", where)
        role = message.get("role")
        if role not in ROLES:
            raise _fail(f"{where}.role must be one of: {', '.join(sorted(ROLES))}.", f"{where}.role")
        content = message.get("content")
        has_tool_calls = role == "assistant" and message.get("tool_calls")
        if content is None and not has_tool_calls:
            raise _fail(f"{where}.content is required.", f"{where}.content")
        if content is not None and not isinstance(content, (str, list)):
            raise _fail(f"{where}.content must be a string or an array of content parts.", f"{where}.content")
    return value


def _number(body: dict[str, Any], name: str) -> None:
    if name not in body or body[name] is None:
        return
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(f"'{name}' must be a number.", name)
    low, high = _RANGES[name]
    if not low <= value <= high:
        raise _fail(f"'{name}' must be between {low:g} and {high:g}; got {value}.", name)


def _positive_int(body: dict[str, Any], name: str) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(f"'{name}' must be a positive integer.", name)


def _prompt(value: Any) -> PromptReference | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        raise _fail(
            '\'prompt\' must be an object like {"name": "...", "label": "production", "variables": {}}.', "prompt"
        )
    unknown = sorted(set(value) - {"name", "label", "version", "variables"})
    if unknown:
        raise _fail(
            f"Unknown field(s) in 'prompt': {', '.join(unknown)}; use name, label or version, variables.", "prompt"
        )
    label = value.get("label")
    version = value.get("version")
    if label is not None and version is not None:
        raise _fail("Pass either prompt.label or prompt.version, not both.", "prompt.version")
    if label is not None and not isinstance(label, str):
        raise _fail("'prompt.label' must be a string.", "prompt.label")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise _fail("'prompt.version' must be a positive integer.", "prompt.version")
    variables = value.get("variables") or {}
    if not isinstance(variables, dict):
        raise _fail("'prompt.variables' must be an object.", "prompt.variables")
    return PromptReference(name=value["name"], label=label, version=version, variables=variables)


def _documents(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail("'documents' must be an array of {id, text, classification?, source?}.", "documents")
    for index, document in enumerate(value):
        if not isinstance(document, dict) or not isinstance(document.get("text"), str):
            raise _fail(f"documents[{index}] must be an object with a string 'text'.", f"documents[{index}]")
        identifier = document.get("id")
        if isinstance(identifier, bool) or not isinstance(identifier, str | int) or identifier == "":
            raise _fail(
                f"documents[{index}].id is required: a string or number naming the document (it is cited as [id]).",
                f"documents[{index}].id",
            )
        classification = document.get("classification")
        if classification is not None and classification not in Clearance.level_names():
            raise _fail(
                f"documents[{index}].classification must be one of {', '.join(Clearance.level_names())}.",
                f"documents[{index}].classification",
            )
        score = document.get("score")
        if score is not None and (
            isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
        ):
            raise _fail(f"documents[{index}].score must be a finite number when given.", f"documents[{index}].score")
    return value


def _check_nesting(body: dict[str, Any]) -> None:
    """Refuse a body nested deeper than MAX_NESTING_DEPTH, naming where (iteratively: a deep
    body must not exhaust the checker's own stack either)."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(body, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            where = path_text(path[:3])
            raise ValidationFailed(
                f"'{where}' nests arrays and objects more than {MAX_NESTING_DEPTH} levels deep; the request "
                f"body may nest at most {MAX_NESTING_DEPTH} levels. Flatten it (message content is a string or "
                "an array of content parts).",
                code="nesting_too_deep",
                param=where,
            )
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1, (*path, key) if len(path) < 3 else path))


def _check_dimensions(body: dict[str, Any]) -> None:
    """Refuse a request over any of the REQUEST_MAX_* limits (core.limits), naming the
    limit, before any work is done for it and before any budget is reserved."""
    check_count(
        body.get("messages"),
        param="messages",
        setting="REQUEST_MAX_MESSAGES",
        noun="messages",
        code="too_many_messages",
    )
    check_count(
        body.get("documents"),
        param="documents",
        setting="REQUEST_MAX_DOCUMENTS",
        noun="documents",
        code="too_many_documents",
    )
    for name in ("tools", "functions"):
        check_count(body.get(name), param=name, setting="REQUEST_MAX_TOOLS", noun="tools", code="too_many_tools")
    prompt = body.get("prompt")
    variables = prompt.get("variables") if isinstance(prompt, dict) else None
    check_count(
        variables,
        param="prompt.variables",
        setting="REQUEST_MAX_VARIABLES",
        noun="variables",
        code="too_many_variables",
    )
    check_text(
        [
            (("messages",), body.get("messages")),
            (("documents",), body.get("documents")),
            (("prompt", "variables"), variables),
            (("tools",), body.get("tools")),
            (("functions",), body.get("functions")),
        ]
    )


def parse_chat_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    _check_nesting(body)
    _check_dimensions(body)
    unknown = sorted(set(body) - ALLOWED)
    if unknown:
        raise _fail(f"Unrecognized request argument supplied: {', '.join(unknown)}.", unknown[0])
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail("'model' is required: the name of a model from GET /v1/models.", "model")
    prompt = _prompt(body.get("prompt"))
    messages = _messages(body.get("messages", [] if prompt else None), param="messages", allow_empty=prompt is not None)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _fail("'stream' must be true or false.", "stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise _fail("'stream_options' must be an object.", "stream_options")
    if stream_options and not stream:
        raise _fail("'stream_options' is only allowed when 'stream' is true.", "stream_options")
    for name in _RANGES:
        _number(body, name)
    for name in ("max_tokens", "max_completion_tokens", "n"):
        _positive_int(body, name)
    user = body.get("user") or ""
    if not isinstance(user, str) or len(user) > 256:
        raise _fail("'user' must be a string of at most 256 characters (your end user's id).", "user")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict) or len(metadata) > 32:
        raise _fail("'metadata' must be an object with at most 32 keys.", "metadata")
    for key, value in metadata.items():
        if not isinstance(value, (str, int, float, bool)) or len(str(key)) > 64 or len(str(value)) > 512:
            raise _fail(
                "metadata values must be strings, numbers or booleans (keys up to 64, values up to 512 characters).",
                f"metadata.{key}",
            )
    params = {name: body[name] for name in PASS_THROUGH if name in body}
    return ChatRequest(
        model=model.strip(),
        messages=messages,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
        user=user,
        metadata=metadata,
        params=params,
        prompt=prompt,
        documents=_documents(body.get("documents")),
    )
