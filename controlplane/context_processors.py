from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from controlplane.navigation import AREAS
from costs.selectors import notification_unread_count


def navigation(request: HttpRequest) -> dict[str, Any]:
    match = getattr(request, "resolver_match", None)
    current = ""
    if match is not None:
        current = match.kwargs.get("area") or (match.url_name or "")
        if match.namespace == "settings" or request.path.startswith("/settings/"):
            current = "settings"
    context: dict[str, Any] = {"nav_areas": AREAS, "nav_current": current}
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        # A callable: the template calls it once ({% with %}), so a page that does not render
        # the navigation (a partial, an API response) makes no query.
        user_id = user.pk
        context["nav_unread_notifications"] = lambda: notification_unread_count(user_id=user_id)
    return context
