"""Request id, access log and request metrics for every request, sync or async."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from core.errors import ApplicationError, NotFound
from core.logging import request_id_from, request_id_var
from core.metrics import HTTP_LATENCY, HTTP_REQUESTS

logger = logging.getLogger("controlplane.access")


class SyncAndAsyncMiddleware:
    """A middleware that serves sync and async requests alike: it is called the way its
    `get_response` is, and runs `_call` or awaits `_acall` accordingly."""

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
        return self._call(request)

    def _call(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError


class RequestIdMiddleware(SyncAndAsyncMiddleware):
    """Takes a sane `X-Request-ID` from the client or makes one, and echoes it back."""

    def _call(self, request: HttpRequest) -> HttpResponse:
        started, token = self._start(request)
        try:
            response = self.get_response(request)
            self._finish(request, response, started)
            return response
        finally:
            request_id_var.reset(token)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started, token = self._start(request)
        try:
            response = await self.get_response(request)
            self._finish(request, response, started)
            return response
        finally:
            request_id_var.reset(token)

    def _start(self, request: HttpRequest) -> tuple[float, Any]:
        request_id = request_id_from(request.headers.get("X-Request-ID"))
        request.request_id = request_id  # type: ignore[attr-defined]  # read by views and services
        return time.perf_counter(), request_id_var.set(request_id)

    def _finish(self, request: HttpRequest, response: HttpResponse, started: float) -> None:
        elapsed = time.perf_counter() - started
        response["X-Request-ID"] = request_id_var.get() or ""
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        HTTP_REQUESTS.labels(route=route, method=request.method, status=str(response.status_code)).inc()
        HTTP_LATENCY.labels(route=route, method=request.method).observe(elapsed)
        logger.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )


class ApplicationErrorMiddleware:
    """Pages: a domain error raised by a selector or service becomes a 404, 403 or 400 page.

    (The API maps the same errors in core.api.exceptions.)
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, NotFound):
            return render(request, "404.html", status=404)
        # A 403 goes on the denied-access log in compliance.middleware, with the 403s that
        # pages answer themselves.
        if isinstance(exception, ApplicationError):
            template = "403.html" if exception.status_code == 403 else "400.html"
            return render(request, template, {"exception": exception.message}, status=exception.status_code)
        return None
