"""The API docs describe the gateway's OpenAI-compatible endpoints too."""

from __future__ import annotations

import pytest
from drf_spectacular.validation import validate_schema

from gateway.chat import ALLOWED

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        section, name = node["$ref"].removeprefix("#/components/").split("/")
        node = schema["components"][section][name]
    return node


def test_the_schema_is_valid_openapi_3(schema):
    validate_schema(schema)  # raises on any violation of the OpenAPI 3 JSON schema


def test_chat_completions_is_described_with_its_body_responses_errors_and_bearer_auth(schema):
    operation = schema["paths"]["/v1/chat/completions"]["post"]

    assert operation["security"] == [{"ApiKey": []}]
    assert schema["components"]["securitySchemes"]["ApiKey"]["type"] == "http"
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    body = _resolve(schema, operation["requestBody"]["content"]["application/json"]["schema"])
    assert body["required"] == ["model"]
    # every field the gateway accepts, and no other (it refuses unknown fields)
    assert set(body["properties"]) == ALLOWED
    assert body["additionalProperties"] is False
    responses = operation["responses"]
    assert set(responses) == {"200", "400", "401", "403", "404", "405", "413", "429", "500", "502", "503", "504"}
    assert set(responses["200"]["content"]) == {"application/json", "text/event-stream"}
    completion = _resolve(schema, responses["200"]["content"]["application/json"]["schema"])
    assert completion["properties"]["object"]["enum"] == ["chat.completion"]
    assert "x-controlplane-call-id" in responses["200"]["headers"]
    assert "x-controlplane-documents-dropped" in responses["200"]["headers"]
    assert responses["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
    error = _resolve(schema, responses["400"]["content"]["application/json"]["schema"])
    assert set(error["properties"]["error"]["required"]) == {"message", "type", "param", "code"}


def test_models_is_described(schema):
    operation = schema["paths"]["/v1/models"]["get"]

    assert operation["security"] == [{"ApiKey": []}]
    listing = _resolve(schema, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert listing["properties"]["object"]["enum"] == ["list"]
    assert set(listing["properties"]["data"]["items"]["required"]) == {"id", "object", "created", "owned_by"}
    assert {"401", "403"} <= set(operation["responses"])


def test_the_rest_api_is_still_described(schema):
    assert "/api/v1/teams/" in schema["paths"]
    assert "/api/v1/applications/{application_id}/keys/" in schema["paths"]
