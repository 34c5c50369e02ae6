"""Domain errors. Services raise these; the API exception handler maps them to HTTP once."""

from __future__ import annotations

import contextvars


class ApplicationError(Exception):
    """An error the caller can act on. `message` must say what to fix."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param


class ValidationFailed(ApplicationError):
    status_code = 400
    default_code = "invalid_value"


class AuthenticationRequired(ApplicationError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


# The refusals raised while a request is served (a list set per request by compliance's
# AuditContextMiddleware), so that a page that catches one and answers 403 itself still has
# it recorded in the denied-access log, as the API's exception handler records its own.
raised_refusals: contextvars.ContextVar[list[PermissionDenied] | None] = contextvars.ContextVar(
    "raised_refusals", default=None
)


class PermissionDenied(ApplicationError):
    status_code = 403
    error_type = "permission_error"
    default_code = "permission_denied"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message, code=code, param=param)
        refusals = raised_refusals.get()
        if refusals is not None:
            refusals.append(self)


class NotFound(ApplicationError):
    status_code = 404
    default_code = "not_found"


class PayloadTooLarge(ApplicationError):
    status_code = 413
    default_code = "request_too_large"


class Conflict(ApplicationError):
    status_code = 409
    default_code = "conflict"
