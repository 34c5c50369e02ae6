"""Validation and canonical form of a version's content (shared by the API and prompts_sync).

Every error is a `ValidationFailed` whose `param` is the path of the offending field
(`messages[1].content`), which prompts_sync turns into a file line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.classification import Clearance
from core.errors import ValidationFailed
from prompts import context, templating

MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
LABEL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
VARIABLE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# `latest` always means the newest version; it cannot be moved by hand.
RESERVED_LABELS = frozenset({"latest"})

_NUMBER_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


@dataclass(frozen=True)
class VersionContent:
    messages: list[dict[str, str]]
    params: dict[str, Any]
    variables: list[str]
    context_budget: dict[str, Any]
    classification: int = Clearance.INTERNAL

    @property
    def content_hash(self) -> str:
        hashed: dict[str, Any] = {
            "messages": self.messages,
            "params": self.params,
            "variables": self.variables,
            "context_budget": self.context_budget,
        }
        # The default level is left out so that versions stored before classification existed
        # (all internal) keep their hash; any other level makes identical text a new version.
        if self.classification != Clearance.INTERNAL:
            hashed["classification"] = Clearance(self.classification).label
        canonical = json.dumps(
            hashed,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def validate_prompt_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValidationFailed(
            f"'{name}' is not a valid prompt name: use 1-200 letters, digits, '-', '_' or '.', starting with a "
            "letter or digit.",
            param="name",
        )
    return name


def validate_label_name(label: str) -> str:
    if not LABEL_PATTERN.match(label):
        raise ValidationFailed(
            f"'{label}' is not a valid label: use 1-64 lowercase letters, digits, '-', '_' or '.'.", param="label"
        )
    if label in RESERVED_LABELS:
        raise ValidationFailed(f"'{label}' always points at the newest version and cannot be moved.", param="label")
    return label


def validate_tags(tags: Any) -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(tag, str) and 0 < len(tag) <= 50 for tag in tags):
        raise ValidationFailed("tags must be a list of strings of 1-50 characters.", param="tags")
    return sorted(set(tags))


def validate_classification(classification: Any) -> int:
    """A level name ('confidential') or a Clearance value -> the stored integer."""
    if classification is None:
        return int(Clearance.INTERNAL)
    if isinstance(classification, str):
        try:
            return int(Clearance.from_name(classification.strip()))
        except ValueError:
            pass
    elif isinstance(classification, int) and not isinstance(classification, bool) and classification in Clearance:
        return int(classification)
    raise ValidationFailed(
        f"classification must be one of {', '.join(Clearance.level_names())} (got {classification!r}).",
        param="classification",
    )


def _validate_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ValidationFailed("messages must be a non-empty list of {role, content} objects.", param="messages")
    cleaned = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise ValidationFailed(f"{where} must be an object with role and content.", param=where)
        unknown = sorted(set(message) - {"role", "content"})
        if unknown:
            raise ValidationFailed(
                f"{where} has unknown keys {', '.join(unknown)}; a message has role and content.",
                param=f"{where}.{unknown[0]}",
            )
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            raise ValidationFailed(
                f"{where}.role must be one of {', '.join(MESSAGE_ROLES)} (got {role!r}).", param=f"{where}.role"
            )
        content = message.get("content")
        if not isinstance(content, str):
            raise ValidationFailed(f"{where}.content must be a string (a Jinja2 template).", param=f"{where}.content")
        cleaned.append({"role": str(role), "content": content})
    return cleaned


def _validate_params(params: Any) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise ValidationFailed('params must be an object such as {"model": "gpt-4o"}.', param="params")
    if "model" in params and (not isinstance(params["model"], str) or not params["model"]):
        raise ValidationFailed("params.model must be a model name.", param="params.model")
    for key, (low, high) in _NUMBER_RANGES.items():
        value = params.get(key)
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high
        ):
            raise ValidationFailed(f"params.{key} must be a number from {low:g} to {high:g}.", param=f"params.{key}")
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise ValidationFailed("params.max_tokens must be a positive integer.", param="params.max_tokens")
    if "response_format" in params and not isinstance(params["response_format"], Mapping):
        raise ValidationFailed(
            'params.response_format must be an object such as {"type": "json_object"}.', param="params.response_format"
        )
    try:
        json.dumps(params)
    except (TypeError, ValueError):
        raise ValidationFailed("params must contain JSON values only.", param="params") from None
    return dict(params)


def validate_content(
    *,
    messages: Any,
    params: Any = None,
    variables: Any = None,
    context_budget: Any = None,
    classification: Any = None,
) -> VersionContent:
    cleaned_messages = _validate_messages(messages)
    level = validate_classification(classification)
    cleaned_params = _validate_params(params if params is not None else {})
    if context_budget is not None and not isinstance(context_budget, Mapping):
        raise ValidationFailed("context_budget must be an object.", param="context_budget")
    budget = context.validate_budget(context_budget or {})
    used: set[str] = set()
    for index, message in enumerate(cleaned_messages):
        used |= templating.check_template(message["content"], where=f"messages[{index}].content")
    used -= templating.RESERVED_VARIABLES
    if variables is None:
        declared = sorted(used)
    else:
        if not isinstance(variables, list) or not all(isinstance(name, str) for name in variables):
            raise ValidationFailed("variables must be a list of variable names.", param="variables")
        bad = [name for name in variables if not VARIABLE_PATTERN.match(name) or name in templating.RESERVED_VARIABLES]
        if bad:
            raise ValidationFailed(
                f"invalid variable names: {', '.join(bad)} (use identifiers; 'documents' is reserved).",
                param="variables",
            )
        if len(set(variables)) != len(variables):
            raise ValidationFailed("variables lists a name twice.", param="variables")
        undeclared = sorted(used - set(variables))
        if undeclared:
            raise ValidationFailed(
                f"the templates use undeclared variables: {', '.join(undeclared)}; add them to variables.",
                param="variables",
                code="invalid_variables",
            )
        declared = sorted(variables)
    return VersionContent(
        messages=cleaned_messages,
        params=cleaned_params,
        variables=declared,
        context_budget=budget,
        classification=level,
    )
