from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from accounts.authentication import get_caller
from core.generation_cache import SharedCacheUnavailable, shared


class CallerRateThrottle(SimpleRateThrottle):
    """One request budget per API key, per user for browser sessions, per IP otherwise."""

    scope = "caller"

    def get_cache_key(self, request: Request, view: Any) -> str:
        caller = get_caller(request)
        if caller.api_key is not None:
            ident = f"key:{caller.api_key.prefix}"
        elif caller.user is not None:
            ident = f"user:{caller.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Request, view: Any) -> bool:
        # The counters live in the shared cache. While it is down, requests are served
        # unthrottled rather than refused: the database stays the source of truth and the
        # outage is reported on /readyz and in the metrics.
        try:
            return shared(lambda: super(CallerRateThrottle, self).allow_request(request, view))
        except SharedCacheUnavailable:
            return True
