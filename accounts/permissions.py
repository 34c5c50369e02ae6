from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.authentication import get_caller


class IsAuthenticatedCaller(BasePermission):
    """A signed-in user or a valid API key. Finer checks happen in selectors and services."""

    message = "Authentication required: send 'Authorization: Bearer <API key>' or sign in."

    def has_permission(self, request: Request, view: Any) -> bool:
        caller = get_caller(request)
        return caller.user is not None or caller.api_key is not None
