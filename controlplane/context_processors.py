from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from controlplane.navigation import AREAS


def navigation(request: HttpRequest) -> dict[str, Any]:
    match = getattr(request, "resolver_match", None)
    current = ""
    if match is not None:
        current = match.kwargs.get("area") or (match.url_name or "")
        if match.namespace == "settings" or request.path.startswith("/settings/"):
            current = "settings"
    return {"nav_areas": AREAS, "nav_current": current}
