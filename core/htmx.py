"""htmx helpers: render a partial for htmx requests and the full page otherwise."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def render_page(
    request: HttpRequest,
    *,
    page: str,
    partial: str,
    context: dict[str, Any],
    status: int = 200,
) -> HttpResponse:
    htmx = getattr(request, "htmx", None)
    # Boosted navigation swaps the whole body, so it needs the full page.
    template = partial if htmx and not htmx.boosted else page
    return render(request, template, context, status=status)


def htmx_redirect(url: str) -> HttpResponse:
    """Tell htmx to navigate (a plain 302 would be followed inside the swap target)."""
    response = HttpResponse(status=204)
    response["HX-Redirect"] = url
    return response
