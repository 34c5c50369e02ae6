"""Carries the client's address to audit events recorded by services that do not get the request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from compliance.audit import client_ip_var, normalise_ip


class AuditContextMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self._acall(request)
        token = client_ip_var.set(normalise_ip(request.META.get("REMOTE_ADDR")))
        try:
            return self.get_response(request)
        finally:
            client_ip_var.reset(token)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        token = client_ip_var.set(normalise_ip(request.META.get("REMOTE_ADDR")))
        try:
            return await self.get_response(request)
        finally:
            client_ip_var.reset(token)
