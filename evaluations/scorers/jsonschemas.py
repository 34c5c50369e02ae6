"""JSON Schemas written by teams (a dataset's item schema, a JSON Schema scorer), checked once
when they are saved and validated with a bounded regex engine.

jsonschema's `pattern` keyword uses Python's `re`, which can backtrack for minutes on a crafted
pattern; here `pattern` runs on the `regex` package with a timeout, and `patternProperties` (whose
matching jsonschema does internally with `re`) is refused.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import regex
from jsonschema import validators

from evaluations import limits


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    if not validator.is_type(instance, "string"):
        return
    if regex.search(pattern, instance, timeout=limits.REGEX_TIMEOUT_SECONDS) is None:
        yield jsonschema.ValidationError(f"{instance[:100]!r} does not match {pattern!r}")


_BoundedValidator = validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})


def _walk(value: Any) -> Any:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def json_depth_error(value: Any, limit: int) -> str | None:
    """What is wrong with how deeply `value` nests, or None; iterative (a deep value costs no stack)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return f"nests more than {limit} levels deep"
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return None


def schema_problem(schema: Any) -> str | None:
    """What is wrong with `schema` as a team's JSON Schema, or None."""
    if not isinstance(schema, dict):
        return "a JSON Schema must be a JSON object"
    size = len(json.dumps(schema))
    if size > limits.MAX_SCHEMA_CHARS:
        return f"the schema has {size:,} characters of JSON; at most {limits.MAX_SCHEMA_CHARS:,} are allowed"
    depth = json_depth_error(schema, limits.MAX_JSON_DEPTH * 2)
    if depth:
        return f"the schema {depth}"
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        return f"invalid JSON Schema at {where}: {error.message[:300]}"
    for node in _walk(schema):
        if "patternProperties" in node:
            return "patternProperties is not supported (its regexes cannot be bounded); use properties or pattern"
        if "$ref" in node and isinstance(node["$ref"], str) and not node["$ref"].startswith("#"):
            return f"$ref {node['$ref'][:100]!r} points outside the schema; only local references (#/...) are allowed"
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            try:
                regex.compile(pattern)
            except regex.error as error:
                return f"the pattern {pattern[:100]!r} does not compile: {error}"
    return None


def schema_validator(schema: dict[str, Any]) -> Any:
    """A validator for a schema that passed `schema_problem`."""
    problem = schema_problem(schema)
    if problem:
        raise ValueError(problem)
    return _BoundedValidator(schema)
