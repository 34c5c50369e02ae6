"""Compliance pages (htmx) over the same selectors and services as the API.

/compliance/ is open to every member (it says what the audit trail needs); the audit
search, verification, exports, denied-access log and retention need the compliance role
(compliance officers and admins), as in the API.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from accounts import selectors as account_selectors
from accounts.authentication import get_caller
from accounts.caller import Caller
from compliance import chain, selectors, services
from compliance.api import export_file_response
from compliance.audit import Action
from compliance.models import AuditCheckpoint, AuditEvent, ExportFormat, RetentionPolicy
from core.errors import ApplicationError, NotFound, PermissionDenied, ValidationFailed
from core.htmx import render_page
from core.ids import parse_whole_number
from core.pages import Refusal, page_action

require_page = require_http_methods(["GET", "HEAD"])
require_post = require_http_methods(["POST"])
PAGE_ROWS = 100
EXPORTS_SECTION = "compliance/partials/_exports.html"
RETENTION_ROW = "compliance/partials/_retention_row.html"


def _events(caller: Caller, params: dict[str, str]) -> tuple[selectors.AuditFilter, list[AuditEvent]]:
    audit_filter = selectors.parse_filters(params)
    rows = list(selectors.audit_event_list(caller=caller, audit_filter=audit_filter).order_by("-id")[:PAGE_ROWS])
    return audit_filter, rows


def _exports_context(caller: Caller) -> dict[str, Any]:
    exports = list(selectors.audit_export_list(caller=caller).order_by("-created_at")[:20])
    return {"exports": exports, "exports_running": any(e.status in ("pending", "running") for e in exports)}


def _status_context(caller: Caller) -> dict[str, Any]:
    # The chain is one for the whole system: its length and hashes say how much every team
    # did, so only operators see them; others see whether the head is signed, and when.
    return {
        "sees_whole_chain": caller.user is not None and caller.user.is_superuser,
        "head": chain.chain_head(),
        "checkpoint": AuditCheckpoint.objects.order_by("-sequence").first(),
        "signed_head": chain.head_last_written(),
    }


@login_required
@require_page
def audit_page(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    context: dict[str, Any] = {"nav_current": "compliance", "can_view": selectors.can_view_audit(caller)}
    if context["can_view"]:
        params = selectors.single_values(request.GET)
        audit_filter, events = _events(caller, params)
        teams = list(selectors.retention_scope_teams(caller=caller).order_by("name"))
        context |= {
            "filters": audit_filter.as_dict(),
            "events": events,
            "page_rows": PAGE_ROWS,
            "teams": teams,
            "formats": ExportFormat.choices,
            "retention": [(team, selectors.retention_policy_get(caller=caller, team=team)) for team in teams],
            **_status_context(caller),
            **_exports_context(caller),
        }
    return render(request, "compliance/audit.html", context)


@login_required
@require_page
def events_partial(request: HttpRequest) -> HttpResponse:
    """The audit search results (htmx); the whole page for a plain request."""
    caller = get_caller(request)
    params = selectors.single_values(request.GET)
    audit_filter, events = _events(caller, params)
    context = {"events": events, "filters": audit_filter.as_dict(), "page_rows": PAGE_ROWS, "nav_current": "compliance"}
    return render_page(
        request, page="compliance/events.html", partial="compliance/partials/_events.html", context=context
    )


@login_required
@require_page
def denied_page(request: HttpRequest) -> HttpResponse:
    """The denied-access log: every refusal for lack of a right, newest first."""
    caller = get_caller(request)
    params = selectors.single_values(request.GET, skip=("action",))
    audit_filter, events = _events(caller, {**params, "action": Action.ACCESS_DENIED})
    context = {"events": events, "filters": audit_filter.as_dict(), "page_rows": PAGE_ROWS, "nav_current": "compliance"}
    return render(request, "compliance/denied.html", context)


@login_required
@require_post
def verify(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    report = selectors.audit_verification_for(
        caller=caller, report=services.audit_verify(caller=caller, request=request)
    )
    return render(request, "compliance/partials/_verification.html", {"report": report, **_status_context(caller)})


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def exports(request: HttpRequest) -> HttpResponse:
    """The export list (polled while a job runs); a POST queues an export job."""
    caller = get_caller(request)

    def context(error: ApplicationError | None = None) -> dict[str, Any]:
        return {**_exports_context(caller), "error": error}

    if request.method == "POST":

        def queue() -> None:
            params = selectors.single_values(request.POST, skip=("csrfmiddlewaretoken", "format"))
            if "team" not in params:
                raise ValidationFailed("team: choose the team to export.", param="team")
            services.audit_export_job_create(
                caller=caller,
                audit_filter=selectors.parse_filters(params),
                export_format=selectors.parse_format(request.POST.get("format")),
                request=request,
            )

        return page_action(
            request,
            queue,
            success=lambda _: render(request, EXPORTS_SECTION, context()),
            context=lambda refusal: context(refusal.error),
            page=EXPORTS_SECTION,
            propagate=(PermissionDenied, NotFound),
        )
    if not selectors.can_view_audit(caller):
        selectors.audit_scope(caller=caller)  # raises the 403
    return render(request, EXPORTS_SECTION, context())


@login_required
@require_page
def export_download(request: HttpRequest, export_id: str) -> FileResponse:
    audit_export = selectors.audit_export_get(caller=get_caller(request), export_id=export_id)
    return export_file_response(audit_export)


@login_required
@require_post
def retention_update(request: HttpRequest, team_id: int) -> HttpResponse:
    caller = get_caller(request)
    team = account_selectors.team_get(caller=caller, team_id=team_id)
    raw = request.POST.get("call_content_days", "").strip()

    def save() -> RetentionPolicy:
        days = parse_whole_number(raw) if raw else None
        if raw and days is None:
            raise ValidationFailed(
                "call_content_days: a whole number of days, or empty to keep call content forever.",
                param="call_content_days",
            )
        return services.retention_policy_set(caller=caller, team=team, call_content_days=days, request=request)

    def refused(refusal: Refusal) -> dict[str, Any]:
        policy = selectors.retention_policy_get(caller=caller, team=team)
        return {"team": team, "policy": policy, "error": refusal.error, "saved": False}

    return page_action(
        request,
        save,
        success=lambda policy: render(
            request, RETENTION_ROW, {"team": team, "policy": policy, "error": None, "saved": True}
        ),
        context=refused,
        page=RETENTION_ROW,
        propagate=(PermissionDenied, NotFound),
    )
