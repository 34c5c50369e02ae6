"""Who is asking: the request id and the client's address of a request, for records that name them.

The request id is set per request by core.middleware (core.logging.request_id_var); the client's
address by compliance.middleware.AuditContextMiddleware (`client_ip_var`), so that code that
does not receive the request (services, hook receivers) still records it.
"""

from __future__ import annotations

import contextvars
import ipaddress

from django.http import HttpRequest

from core.logging import request_id_var

client_ip_var: contextvars.ContextVar[str] = contextvars.ContextVar("audit_client_ip", default="")


def normalise_ip(value: str | None) -> str:
    if not value:
        return ""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return ""


def request_context(request: HttpRequest | None) -> tuple[str, str]:
    """(request id, client IP) of `request`, else of the request being served, if any."""
    if request is not None:
        request_id = str(getattr(request, "request_id", "") or request_id_var.get() or "")
        return request_id[:128], normalise_ip(request.META.get("REMOTE_ADDR"))
    return (request_id_var.get() or "")[:128], client_ip_var.get()
