"""Settings pages (htmx) over the same selectors and services as the API. Placeholder
bodies until the settings UI is filled in."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts import selectors
from controlplane.api.authentication import get_caller


@login_required
def team_list(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/team_list.html", {"teams": selectors.team_list(caller=get_caller(request))})


@login_required
def team_detail(request: HttpRequest, team_id: int) -> HttpResponse:
    team = selectors.team_get(caller=get_caller(request), team_id=team_id)
    return render(request, "accounts/team_detail.html", {"team": team})


@login_required
def application_detail(request: HttpRequest, application_id: int) -> HttpResponse:
    application = selectors.application_get(caller=get_caller(request), application_id=application_id)
    return render(request, "accounts/application_detail.html", {"application": application})
