"""OpenAPI: our authentication classes (drf-spectacular extensions) and the gateway's /v1 endpoints."""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.generators import SchemaGenerator as DrfSchemaGenerator
from rest_framework.request import Request

from accounts.permissions import IsAuthenticatedCaller

API_KEY_SECURITY = {
    "type": "http",
    "scheme": "bearer",
    "description": "An application's API key: `Authorization: Bearer cp_...`.",
}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return dict(API_KEY_SECURITY)


class BrowserSessionScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.SessionAuthentication"
    name = "Session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


# The OpenAI-compatible endpoints -------------------------------------------------------
#
# /v1/chat/completions and /v1/models are served by the gateway's ASGI app (gateway.asgi),
# in front of Django, so no DRF view describes them. The schema generator adds them here,
# written out by hand from gateway.chat (the request) and gateway.pipeline (responses, headers).

_TAG = "OpenAI-compatible gateway"


def _error_response(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}},
        "headers": {"x-request-id": {"$ref": "#/components/headers/RequestId"}},
    }
    if retry_after:
        response["headers"]["Retry-After"] = {
            "description": "Whole seconds (at least 1) until a retry can succeed: the budget's period resets, "
            "or calls in flight settle. Absent when waiting cannot help (a total budget already spent).",
            "schema": {"type": "integer", "minimum": 1},
        }
    return response


_STRING = {"type": "string"}
_CALL_HEADERS: dict[str, Any] = {
    "x-request-id": {"$ref": "#/components/headers/RequestId"},
    "x-controlplane-call-id": {
        "description": "The call's id: its record at GET /api/v1/calls/{id}/ and /calls/{id}/.",
        "schema": {"type": "string", "format": "uuid"},
    },
    "x-controlplane-route": {"description": "The model that answered and why it was picked.", "schema": _STRING},
    "x-controlplane-cache": {
        "description": "Semantic cache result.",
        "schema": {"type": "string", "enum": ["none", "miss", "hit", "shadow_hit"]},
    },
    "x-controlplane-overhead-ms": {
        "description": "Time the gateway added, in milliseconds (not on streams: sent as a closing SSE comment).",
        "schema": _STRING,
    },
    "x-controlplane-cost-usd": {"description": "The call's cost in USD (not on streams).", "schema": _STRING},
    "x-controlplane-documents-dropped": {
        "description": "Only when the request sent `documents`: how many did not reach the model "
        "(above the key's clearance, below the prompt's relevance cut-off or over its token budget). "
        "Which ones and why is on the call record (`context_report`).",
        "schema": {"type": "integer", "minimum": 0},
    },
    "x-controlplane-documents-dropped-above-clearance": {
        "description": "Only when the request sent `documents`: how many of the dropped ones were "
        "classified above the key's clearance.",
        "schema": {"type": "integer", "minimum": 0},
    },
}

_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool", "function"]},
        "content": {
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
            "description": "Required except on an assistant message that carries tool_calls.",
        },
        "name": _STRING,
        "tool_calls": {"type": "array", "items": {"type": "object"}},
        "tool_call_id": _STRING,
    },
}

_CHAT_REQUEST: dict[str, Any] = {
    "type": "object",
    "description": "OpenAI's chat completion request, plus the gateway's `prompt` and `documents`. "
    "Unknown fields are refused (400) naming them.",
    "required": ["model"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "description": "A model name from GET /v1/models."},
        "messages": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/ChatMessage"},
            "description": "Required and non-empty unless `prompt` is given (its messages come first).",
        },
        "stream": {"type": "boolean", "default": False},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        "user": {"type": "string", "description": "The end user: budgets, experiments and feedback use it."},
        "metadata": {"type": "object", "additionalProperties": True},
        "prompt": {
            "type": "object",
            "description": "Render a managed prompt (by label or version, not both) before `messages`.",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": _STRING,
                "label": {"type": "string", "example": "production"},
                "version": {"type": "integer", "minimum": 1},
                "variables": {"type": "object", "additionalProperties": True},
            },
        },
        "documents": {
            "type": "array",
            "description": "Context documents. Those classified above the key's clearance never reach the "
            "model; the response headers count them.",
            "items": {
                "type": "object",
                "required": ["text"],
                "properties": {
                    "id": _STRING,
                    "text": _STRING,
                    "classification": {
                        "type": "string",
                        "enum": ["public", "internal", "confidential", "restricted"],
                        "default": "internal",
                    },
                    "source": _STRING,
                    "score": {"type": "number", "description": "Relevance, when you ranked it yourself."},
                },
            },
        },
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "n": {"type": "integer", "minimum": 1},
        "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "seed": {"type": "integer"},
        "response_format": {"type": "object"},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}]},
        "parallel_tool_calls": {"type": "boolean"},
        "logit_bias": {"type": "object", "additionalProperties": {"type": "number"}},
        "logprobs": {"type": "boolean"},
        "top_logprobs": {"type": "integer"},
        "reasoning_effort": _STRING,
        "service_tier": _STRING,
        "store": {"type": "boolean"},
        "modalities": {"type": "array", "items": _STRING},
        "prediction": {"type": "object"},
        "audio": {"type": "object"},
        "web_search_options": {"type": "object"},
        "verbosity": _STRING,
        "prompt_cache_key": _STRING,
        "safety_identifier": _STRING,
        "functions": {"type": "array", "items": {"type": "object"}},
        "function_call": {"oneOf": [{"type": "string"}, {"type": "object"}]},
    },
}

_USAGE = {
    "type": "object",
    "properties": {
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
    },
}

_CHAT_COMPLETION = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "id": _STRING,
        "object": {"type": "string", "enum": ["chat.completion"]},
        "created": {"type": "integer"},
        "model": _STRING,
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "message": {"$ref": "#/components/schemas/ChatMessage"},
                    "finish_reason": _STRING,
                },
            },
        },
        "usage": _USAGE,
    },
}

_SCHEMAS: dict[str, Any] = {
    "OpenAIError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string", "description": "What went wrong and what to fix."},
                    "type": {"type": "string", "example": "invalid_request_error"},
                    "param": {"type": "string", "nullable": True},
                    "code": {"type": "string", "nullable": True},
                },
            }
        },
    },
    "ChatMessage": _MESSAGE,
    "ChatCompletionRequest": _CHAT_REQUEST,
    "ChatCompletion": _CHAT_COMPLETION,
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "object", "created", "owned_by"],
                    "properties": {
                        "id": {"type": "string", "description": "The name to pass as `model`."},
                        "object": {"type": "string", "enum": ["model"]},
                        "created": {"type": "integer"},
                        "owned_by": _STRING,
                    },
                },
            },
        },
    },
}

_AUTH_ERRORS = {
    "401": _error_response("No API key, a malformed one, or a revoked, expired or archived application's key."),
    "403": _error_response("The key's role may not call models."),
}

_PATHS: dict[str, Any] = {
    "/v1/chat/completions": {
        "post": {
            "operationId": "v1_chat_completions_create",
            "summary": "Create a chat completion (OpenAI-compatible)",
            "description": "Use the official `openai` SDK with `base_url` set to this server's `/v1`. The gateway "
            "renders the prompt, filters documents by clearance, applies guardrails and budgets, routes to a "
            "model, records the call and answers in OpenAI's shape; with `stream: true`, as server-sent events.",
            "tags": [_TAG],
            "security": [{"ApiKey": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}},
            },
            "responses": {
                "200": {
                    "description": "The completion; or, with `stream: true`, `chat.completion.chunk` events "
                    "ending with `data: [DONE]`.",
                    "headers": _CALL_HEADERS,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletion"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                "400": _error_response(
                    "Invalid request (named in `param`); refused by a guardrail (PII, prompt injection, an answer "
                    "leaking classified data); or the provider's own 4xx, passed through."
                ),
                **_AUTH_ERRORS,
                "404": _error_response("Unknown model or prompt."),
                "405": _error_response("Only POST is accepted."),
                "413": _error_response("The request body is over the size limit."),
                "429": _error_response(
                    "A blocking budget would be exceeded (`code: budget_exceeded`), or the provider's rate limit.",
                    retry_after=True,
                ),
                "500": _error_response("Internal error; it has been logged."),
                "502": _error_response("Every provider attempt failed (and every fallback)."),
                "503": _error_response("The provider is unavailable (circuit breaker open)."),
                "504": _error_response("The provider timed out."),
            },
        }
    },
    "/v1/models": {
        "get": {
            "operationId": "v1_models_list",
            "summary": "List the models this key may call (OpenAI-compatible)",
            "tags": [_TAG],
            "security": [{"ApiKey": []}],
            "responses": {
                "200": {
                    "description": "The key's team's enabled models and the shared catalog's.",
                    "headers": {"x-request-id": {"$ref": "#/components/headers/RequestId"}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelList"}}},
                },
                **_AUTH_ERRORS,
                "405": _error_response("Only GET is accepted."),
            },
        }
    },
}


class SchemaGenerator(DrfSchemaGenerator):
    """drf-spectacular's generator, plus the gateway's /v1 endpoints."""

    def get_schema(self, request: Any = None, public: bool = False) -> dict[str, Any]:
        schema: dict[str, Any] = super().get_schema(request=request, public=public)
        schema["paths"] = {**copy.deepcopy(_PATHS), **schema.get("paths", {})}
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {}).update(copy.deepcopy(_SCHEMAS))
        components.setdefault("headers", {})["RequestId"] = {
            "description": "The request's id (yours if you sent a sane X-Request-ID); logs carry it.",
            "schema": {"type": "string"},
        }
        components.setdefault("securitySchemes", {}).setdefault("ApiKey", dict(API_KEY_SECURITY))
        tags = schema.setdefault("tags", [])
        if all(tag.get("name") != _TAG for tag in tags):
            tags.append({"name": _TAG, "description": "OpenAI wire protocol, served by the gateway (`/v1`)."})
        return schema


class SchemaAccess(IsAuthenticatedCaller):
    """The schema and the docs page: open to anyone unless API_SCHEMA_REQUIRES_LOGIN (the default
    in production), then to signed-in users and API keys. Read per request, not at import."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return not settings.API_SCHEMA_REQUIRES_LOGIN or super().has_permission(request, view)
