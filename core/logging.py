"""The request id: which one a request carries, and a context variable that carries it to every
log line (and to records that name the request, through core.requests)."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# A client's own id is kept only if it is plain and bounded: it goes into log lines, response
# headers and the audit trail.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def request_id_from(supplied: str | None) -> str:
    """The id of a request: the client's `X-Request-ID` if it is sane, else a new one.

    Every entry point (core.middleware for Django, gateway.asgi for the chat endpoint) uses this
    one rule, so a request's id looks the same whichever way it came in."""
    if supplied and _CLIENT_REQUEST_ID.match(supplied):
        return supplied
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True
