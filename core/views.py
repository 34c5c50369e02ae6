"""Pages and endpoints every deployment has: liveness, readiness, metrics, API docs, error pages."""

from __future__ import annotations

import datetime
import hmac
from typing import Any

import kombu
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from drf_spectacular.views import SpectacularSwaggerSplitView

from core.api.exceptions import error_body
from core.generation_cache import shared_cache_state
from core.metrics import render_latest
from core.models import WorkerHeartbeat


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    with kombu.Connection(
        settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS, connect_timeout=2
    ) as broker:
        broker.ensure_connection(max_retries=1, timeout=2)


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database and the broker answer. Worker heartbeats are reported, not required.

    Without the shared cache the process still serves (from the database, at some extra cost):
    it stays ready, with status "degraded" and the reason under checks.shared_cache.
    """
    checks: dict[str, Any] = {}
    is_ready = True
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        try:
            check()
            checks[name] = "ok"
        except Exception as error:  # noqa: BLE001 - any failure means not ready; the reason is reported
            checks[name] = f"error: {type(error).__name__}: {error}"
            is_ready = False
    if checks["database"] == "ok":
        latest = WorkerHeartbeat.objects.order_by("-seen_at").first()
        checks["worker_last_seen_seconds"] = (
            round((timezone.now() - latest.seen_at) / datetime.timedelta(seconds=1)) if latest else None
        )
    is_cache_available, checks["shared_cache"] = shared_cache_state()
    status = "unavailable" if not is_ready else ("ready" if is_cache_available else "degraded")
    return JsonResponse({"status": status, "checks": checks}, status=200 if is_ready else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics; with METRICS_TOKEN set, only for `Authorization: Bearer <METRICS_TOKEN>`."""
    token = settings.METRICS_TOKEN
    if token and not hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
        response = HttpResponse(
            "Send 'Authorization: Bearer <token>' with the token set in METRICS_TOKEN.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = render_latest()
    return HttpResponse(body, content_type=content_type)


_api_docs = SpectacularSwaggerSplitView.as_view(url_name="api-schema")


def api_docs(request: HttpRequest) -> HttpResponse:
    """Swagger UI (its script a static-like file, not inline, for the CSP). With
    API_SCHEMA_REQUIRES_LOGIN, a browser that is not signed in is sent to the login page."""
    if settings.API_SCHEMA_REQUIRES_LOGIN and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    return _api_docs(request)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/v1/"))


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        body = error_body(
            message=f"No endpoint at {request.path}; see /api/docs/ for the API.",
            error_type="invalid_request_error",
            code="not_found",
        )
        return JsonResponse(body, status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        body = error_body(
            message="Internal server error; it has been logged.", error_type="api_error", code="server_error"
        )
        return JsonResponse(body, status=500)
    return render(request, "500.html", status=500)
