"""Structural guard: every number and moment a client can send is bounded where it is parsed.

A number beyond a column's range (an `integer` holds 2**31 - 1) or a date-time PostgreSQL
cannot take reaches the database as an error, a 500. Every API request body is a
StrictSerializer; every integer and decimal in one, and in every form, has both bounds, and
every date-time goes through core.dates (its years and UTC offsets are checked there).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django import forms
from django.urls import get_resolver
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from core.api.serializers import StrictSerializer
from core.dates import MomentField, MomentFormField

PROJECT_PACKAGES = {
    "accounts",
    "compliance",
    "controlplane",
    "costs",
    "evaluations",
    "feedback",
    "gateway",
    "observability",
    "prompts",
}


def _project_subclasses(base: Any) -> list[Any]:
    get_resolver().url_patterns  # noqa: B018 - imports every view module, and with it every serializer and form
    seen: set[Any] = set()
    stack: list[Any] = [base]
    while stack:
        for subclass in stack.pop().__subclasses__():
            if subclass not in seen:
                seen.add(subclass)
                stack.append(subclass)
    return sorted(
        (cls for cls in seen if cls.__module__.split(".")[0] in PROJECT_PACKAGES and ".tests" not in cls.__module__),
        key=lambda cls: f"{cls.__module__}.{cls.__qualname__}",
    )


def _input_fields(field: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every writable field under `field`, through nested serializers, lists and dicts."""
    if field.read_only:
        return
    if isinstance(field, serializers.ListSerializer):
        yield from _input_fields(field.child, f"{path}[]")
        return
    if isinstance(field, serializers.Serializer):
        for name, child in field.fields.items():
            yield from _input_fields(child, f"{path}.{name}")
        return
    if isinstance(field, serializers.ListField | serializers.DictField) and field.child is not None:
        yield from _input_fields(field.child, f"{path}[]")
    yield path, field


def _serializer_problems(field: Any) -> str | None:
    if isinstance(field, serializers.IntegerField) and (field.min_value is None or field.max_value is None):
        return "an IntegerField needs min_value and max_value"
    if isinstance(field, serializers.DecimalField) and (
        field.min_value is None or (field.max_value is None and field.max_digits is None)
    ):
        return "a DecimalField needs min_value, and max_value or max_digits"
    if isinstance(field, serializers.DateTimeField) and not isinstance(field, MomentField):
        return "a date-time is a core.dates.MomentField"
    return None


def _form_problems(field: forms.Field) -> str | None:
    if (
        isinstance(field, forms.IntegerField)
        and not isinstance(field, forms.DecimalField | forms.FloatField)
        and (field.min_value is None or field.max_value is None)
    ):
        return "an IntegerField needs min_value and max_value"
    if isinstance(field, forms.DecimalField) and field.max_value is None and field.max_digits is None:
        return "a DecimalField needs max_value or max_digits"
    if isinstance(field, forms.DateTimeField) and not isinstance(field, MomentFormField):
        return "a date-time is a core.dates.MomentFormField"
    return None


def test_every_request_body_of_the_api_is_a_strict_serializer():
    generator = SchemaGenerator()
    generator._initialise_endpoints()  # the endpoints the schema describes (no public API lists them)
    bodies = {}
    for path, _, method, view in generator._get_paths_and_endpoints():
        if method in {"POST", "PUT", "PATCH"}:
            serializer = view.schema.get_request_serializer()
            if serializer is not None:
                bodies[f"{method} {path}"] = serializer if isinstance(serializer, type) else type(serializer)

    assert len(bodies) > 25  # the walk found the API
    not_strict = {operation: cls.__name__ for operation, cls in bodies.items() if not issubclass(cls, StrictSerializer)}
    assert not_strict == {}


def test_every_number_and_moment_a_serializer_accepts_is_bounded():
    classes = _project_subclasses(StrictSerializer)
    problems = {}
    for cls in classes:
        for path, field in _input_fields(cls(), cls.__name__):
            problem = _serializer_problems(field)
            if problem:
                problems[f"{cls.__module__}.{path}"] = problem

    assert len(classes) > 40
    assert problems == {}


def test_every_number_and_moment_a_form_accepts_is_bounded():
    classes = _project_subclasses(forms.BaseForm)
    problems = {}
    for cls in classes:
        for name, field in cls.base_fields.items():
            problem = _form_problems(field)
            if problem:
                problems[f"{cls.__module__}.{cls.__qualname__}.{name}"] = problem

    assert len(classes) > 10
    assert problems == {}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (serializers.IntegerField(), "an IntegerField needs min_value and max_value"),
        (serializers.IntegerField(min_value=0), "an IntegerField needs min_value and max_value"),
        (serializers.IntegerField(min_value=0, max_value=10), None),
        (
            serializers.DecimalField(max_digits=None, decimal_places=2, min_value=0),
            "a DecimalField needs min_value, and max_value or max_digits",
        ),
        (serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0), None),
        (serializers.DateTimeField(), "a date-time is a core.dates.MomentField"),
        (MomentField(), None),
    ],
)
def test_the_guard_tells_a_bounded_field_from_an_unbounded_one(field, expected):
    assert _serializer_problems(field) == expected
