"""Cache pages: per application hit rate, savings, settings, entries (browse, purge) and
shadow review, over the same services and selectors as the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts import roles
from accounts import selectors as account_selectors
from accounts.authentication import get_caller
from core.pages import Refusal, page_action
from gateway.forms import parsed
from gateway.semantic_cache import forms, selectors, services
from gateway.semantic_cache.types import CacheMode

NAV = "gateway"
ENTRIES_SHOWN = 50
PAGE = "semantic_cache/page.html"


@login_required
def cache_index(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    applications = [
        application
        for application in account_selectors.application_list(caller=caller).order_by("team__name", "name")
        if caller.has_permission(roles.VIEW_CACHE, team_id=application.team_id)
    ]
    return render(request, "semantic_cache/index.html", {"applications": applications, "nav_current": NAV})


def _context(request: HttpRequest, application_id: int) -> dict[str, Any]:
    caller = get_caller(request)
    application = selectors.application_for_cache(caller=caller, application_id=application_id)
    entries = list(selectors.entry_list(application=application)[:ENTRIES_SHOWN])
    return {
        "application": application,
        "settings": selectors.settings_get(application=application),
        "stats": selectors.cache_stats(application=application),
        "entries": [selectors.entry_view(caller=caller, entry=entry) for entry in entries],
        "shadow_hits": selectors.shadow_hits(caller=caller, application=application),
        "modes": CacheMode.choices,
        "can_change": caller.has_permission(roles.CHANGE_CACHE_SETTINGS, team_id=application.team_id),
        "can_purge": caller.has_permission(roles.PURGE_CACHE, team_id=application.team_id),
        "can_review": caller.has_permission(roles.REVIEW_SHADOW_HITS, team_id=application.team_id),
        "nav_current": NAV,
    }


def _cache_action(
    request: HttpRequest, application_id: int, action: Callable[[], object], *, done: str
) -> HttpResponse:
    """Run a change asked for on the cache page: go to `done` after it, or show the page with the refusal."""

    def refused(refusal: Refusal) -> dict[str, Any]:
        return {**_context(request, application_id), "error": refusal.error}

    return page_action(request, action, success=lambda _: redirect(done), context=refused, page=PAGE)


@login_required
@require_http_methods(["GET", "POST"])
def cache_page(request: HttpRequest, application_id: int) -> HttpResponse:
    context = _context(request, application_id)
    if request.method == "POST":
        return _cache_action(
            request,
            application_id,
            lambda: services.cache_settings_set(
                caller=get_caller(request),
                application=context["application"],
                **parsed(forms.CacheSettingsForm(request.POST)),
            ),
            done=reverse("semantic_cache:page", args=[application_id]) + "?saved=1",
        )
    context["saved"] = request.GET.get("saved") == "1"
    return render(request, PAGE, context)


@login_required
@require_POST
def cache_purge(request: HttpRequest, application_id: int) -> HttpResponse:
    caller = get_caller(request)
    application = selectors.application_for_cache(caller=caller, application_id=application_id)
    return _cache_action(
        request,
        application_id,
        lambda: services.entries_purge(caller=caller, application=application),
        done=reverse("semantic_cache:page", args=[application_id]),
    )


@login_required
@require_POST
def shadow_review(request: HttpRequest, application_id: int) -> HttpResponse:
    caller = get_caller(request)
    application = selectors.application_for_cache(caller=caller, application_id=application_id)

    def mark() -> None:
        data = parsed(forms.ShadowReviewForm(request.POST))  # verdict: a choice of right or wrong
        services.shadow_review_mark(
            caller=caller, application=application, call_id=data["call_id"], is_correct=data["verdict"] == "right"
        )

    return _cache_action(request, application_id, mark, done=reverse("semantic_cache:page", args=[application_id]))
