"""A response field that can be null says so in the schema (found by the schema fuzzing: an API
key made by a command or the seed has no creator, and GET .../keys/ answered
`"created_by": null` where the schema promised a string)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import get_resolver
from rest_framework import serializers

from accounts.services import api_key_create
from accounts.types import Role
from core.api.serializers import StrictSerializer

PROJECT_PACKAGES = {"accounts", "compliance", "controlplane", "costs", "gateway", "observability", "prompts"}


def _project_serializers() -> list[Any]:
    get_resolver().url_patterns  # noqa: B018 - imports every view module, and with it every serializer
    seen: set[Any] = set()
    stack: list[Any] = [serializers.Serializer]
    while stack:
        for subclass in stack.pop().__subclasses__():
            if subclass not in seen:
                seen.add(subclass)
                stack.append(subclass)
    return [
        cls
        for cls in seen
        if cls.__module__.split(".")[0] in PROJECT_PACKAGES
        and ".tests" not in cls.__module__
        and not issubclass(cls, StrictSerializer)  # request bodies: a default there is for an absent field
    ]


def test_every_response_field_that_defaults_to_null_is_nullable():
    problems = []
    for cls in _project_serializers():
        try:
            fields = cls().fields
        except (TypeError, AssertionError):  # needs arguments to build: not a response serializer
            continue
        for name, field in fields.items():
            if getattr(field, "default", serializers.empty) is None and not field.allow_null:
                problems.append(f"{cls.__module__}.{cls.__qualname__}.{name}")

    assert sorted(problems) == []


@pytest.mark.django_db
def test_a_key_without_a_creator_is_listed_and_described_as_such(team_a, client_for):
    api_key_create(caller=None, application=team_a.application, name="seeded", role=Role.APPLICATION)
    client = client_for(team_a.members["admin"])

    response = client.get(f"/api/v1/applications/{team_a.application.id}/keys/")
    schema = client.get("/api/schema/?format=json").json()

    assert [row["created_by"] for row in response.json()["results"]] == [None]
    assert schema["components"]["schemas"]["ApiKey"]["properties"]["created_by"] == {
        "type": "string",
        "nullable": True,
    }
