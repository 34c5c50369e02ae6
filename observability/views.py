"""Calls pages: the list (htmx filters, opt-in live refresh, cursor pages) and one call's trace.

Plain function views over the same selectors as the API, with the same scoping and redaction.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from accounts import selectors as account_selectors
from accounts.authentication import get_caller
from core.errors import NotFound, ValidationFailed
from core.htmx import render_page
from observability import selectors
from observability.filters import CallFilters, parse_call_filters
from observability.models import CacheResult, CallStatus

LIST_PAGE = "observability/call_list.html"
LIST_RESULTS = "observability/partials/_call_results.html"
LIST_ROWS = "observability/partials/_call_rows.html"
DETAIL_PAGE = "observability/call_detail.html"
DETAIL_CONTENT = "observability/partials/_call_detail.html"
PAGE_ROWS = 50
NAV = "calls"


@login_required
@require_GET
def call_list(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    applications = list(account_selectors.application_list(caller=caller).order_by("team__name", "name"))
    error: ValidationFailed | None = None
    filters = CallFilters()
    before: uuid.UUID | None = None
    try:
        filters = parse_call_filters(request.GET)
        if request.GET.get("before"):
            before = selectors.parse_call_id(request.GET["before"], param="before")
    except ValidationFailed as refused:
        error = refused
    calls: list[Any] = []
    if error is None:
        queryset = selectors.call_list(caller=caller, filters=filters)
        if before is not None:
            queryset = queryset.filter(id__lt=before)
        calls = selectors.calls_masked_for(caller=caller, calls=queryset[: PAGE_ROWS + 1])
    has_older = len(calls) > PAGE_ROWS
    calls = calls[:PAGE_ROWS]
    query = filters.as_query()
    names = {application.id: application.name for application in applications}
    context: dict[str, Any] = {
        "rows": [{"call": call, "application_name": names.get(call.application_id, "")} for call in calls],
        "applications": applications,
        "filters": filters,
        "raw": request.GET,
        "statuses": CallStatus.choices,
        "cache_results": CacheResult.choices,
        "error": error,
        "is_live": request.GET.get("live") == "1" and before is None,
        "query": urlencode(query),
        "live_query": urlencode({**query, "live": "1", "fragment": "rows"}),
        "older_query": urlencode({**query, "before": str(calls[-1].id)}) if has_older else "",
        "is_first_page": before is None,
        "nav_current": NAV,
    }
    status = error.status_code if error is not None else 200
    if request.GET.get("fragment") == "rows" and getattr(request, "htmx", None):
        return render(request, LIST_ROWS, context, status=status)
    return render_page(request, page=LIST_PAGE, partial=LIST_RESULTS, context=context, status=status)


@login_required
@require_GET
def call_detail(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    caller = get_caller(request)
    try:
        call = selectors.call_get(caller=caller, call_id=call_id)
    except NotFound as missing:
        raise Http404(missing.message) from None
    view_of_call = selectors.call_view(caller=caller, call=call)
    application = account_selectors.application_list(caller=caller).filter(id=call.application_id).first()
    context = {
        "call": call,
        "view": view_of_call,
        "application": application,
        "nav_current": NAV,
    }
    return render_page(request, page=DETAIL_PAGE, partial=DETAIL_CONTENT, context=context)
