"""The home page and the placeholders of areas not built yet (the navigation spans every app)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.caller import caller_for_user
from accounts.selectors import application_list, team_list
from controlplane.navigation import AREAS_BY_SLUG


@login_required
def home(request: HttpRequest) -> HttpResponse:
    caller = caller_for_user(request.user)
    context = {
        "teams": team_list(caller=caller),
        "applications": application_list(caller=caller)[:20],
    }
    return render(request, "controlplane/home.html", context)


@login_required
def area_placeholder(request: HttpRequest, area: str) -> HttpResponse:
    if area not in AREAS_BY_SLUG:
        raise Http404(f"No area named {area}.")
    return render(request, "controlplane/not_built.html", {"area": AREAS_BY_SLUG[area]})
