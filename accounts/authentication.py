"""API authentication: `Authorization: Bearer <key>` for apps, the session for the browser.

Both set `request.caller` (accounts.caller.Caller), which selectors and services use.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication
from rest_framework.request import Request

from accounts import services
from accounts.caller import caller_for_api_key, caller_for_user, get_caller
from accounts.models import ApiKey
from core.errors import AuthenticationRequired

__all__ = ["ApiKeyAuthentication", "SessionAuthentication", "get_caller"]


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AnonymousUser, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret or " " in secret:
            raise AuthenticationRequired(
                "The Authorization header is malformed; send 'Authorization: Bearer <API key>'."
            )
        api_key = services.api_key_authenticate(secret)
        request._request.caller = caller_for_api_key(api_key)  # type: ignore[attr-defined]  # read by get_caller
        # Keys are not users: request.user stays anonymous and request.auth carries the key.
        return AnonymousUser(), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class SessionAuthentication(authentication.SessionAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is not None:
            request._request.caller = caller_for_user(result[0])  # type: ignore[attr-defined]  # read by get_caller
        return result
