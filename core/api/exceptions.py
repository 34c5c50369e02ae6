"""One place where errors become HTTP responses, in OpenAI's error shape:

{"error": {"type": ..., "message": ..., "param": ..., "code": ...}}
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from core.errors import ApplicationError
from core.hooks import Hook

# An API request refused for lack of a right: (request=, message=, team_id=).
access_denied: Hook[...] = Hook("access_denied", required=True)

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(*, message: str, error_type: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"type": error_type, "message": message, "param": param, "code": code}}


def _flatten(detail: Any, path: str = "") -> list[tuple[str, str]]:
    """DRF's nested error detail as (field path, message) pairs."""
    if isinstance(detail, dict):
        pairs: list[tuple[str, str]] = []
        for key, value in detail.items():
            key_path = "" if key in ("non_field_errors", "detail") else (f"{path}.{key}" if path else str(key))
            pairs.extend(_flatten(value, key_path or path))
        return pairs
    if isinstance(detail, list):
        pairs = []
        for index, value in enumerate(detail):
            item_path = f"{path}[{index}]" if isinstance(value, (dict, list)) else path
            pairs.extend(_flatten(value, item_path))
        return pairs
    return [(path, str(detail))]


def _is_permission_denied(exc: Exception) -> bool:
    if isinstance(exc, ApplicationError):
        return exc.status_code == 403
    return isinstance(exc, (DjangoPermissionDenied, exceptions.PermissionDenied))


def _validation_response(detail: Any) -> Response:
    pairs = _flatten(detail)
    message = "; ".join(f"{field}: {text}" if field else text for field, text in pairs) or "Invalid request."
    param = next((field for field, _ in pairs if field), None)
    return Response(
        error_body(message=message, error_type="invalid_request_error", code="invalid_value", param=param),
        status=status.HTTP_400_BAD_REQUEST,
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if _is_permission_denied(exc) and context.get("request") is not None:
        # Every refusal for lack of a right goes on the audit trail (compliance registers the receiver).
        access_denied(request=context["request"], message=str(exc), team_id=getattr(exc, "team_id", None))
    if isinstance(exc, ApplicationError):
        response = Response(
            error_body(message=exc.message, error_type=exc.error_type, code=exc.code, param=exc.param),
            status=exc.status_code,
        )
        if exc.status_code == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        retry_after = getattr(exc, "retry_after", None)  # a refusal that waiting ends (a budget's period)
        if retry_after is not None:
            response["Retry-After"] = str(retry_after)
        return response
    if isinstance(exc, exceptions.ValidationError):
        return _validation_response(exc.detail)
    if isinstance(exc, DjangoValidationError):
        return _validation_response(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found: check the id or name in the URL.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: let Django log it and answer 500

    message = (
        str(exc.detail) if not isinstance(exc.detail, (dict, list)) else "; ".join(t for _, t in _flatten(exc.detail))
    )
    code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
    if isinstance(exc, exceptions.ParseError):
        message = f"The request body is not valid JSON ({message}); send a JSON object."
        code = "invalid_json"
    elif isinstance(exc, exceptions.NotAuthenticated):
        message = "Authentication required: send 'Authorization: Bearer <API key>' or sign in."
        code = "missing_api_key"
    response = Response(
        error_body(
            message=message,
            error_type=_TYPE_BY_STATUS.get(exc.status_code, "api_error"),
            code=str(code),
        ),
        status=exc.status_code,
    )
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        response.status_code = 401
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        response["Retry-After"] = str(int(wait) + 1)
    return response
