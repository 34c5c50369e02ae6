"""Per request: the client's address for audit events recorded by services that do not get the
request, and the denied-access log for pages.

A page that catches a refusal (PermissionDenied) to show it in a form answers 403 itself,
so no exception handler sees it. Every refusal raised while serving a request is collected
(core.errors.raised_refusals); a 403 response whose refusal was not recorded yet is
recorded here, the same way the API's exception handler records its own: one place for
every page, whether its view raised the refusal or caught it.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from compliance.audit import record_access_denied, was_denial_recorded
from core.errors import PermissionDenied, raised_refusals
from core.middleware import SyncAndAsyncMiddleware
from core.requests import client_ip_var, normalise_ip


class AuditContextMiddleware(SyncAndAsyncMiddleware):
    def _call(self, request: HttpRequest) -> HttpResponse:
        refusals: list[PermissionDenied] = []
        tokens = client_ip_var.set(normalise_ip(request.META.get("REMOTE_ADDR"))), raised_refusals.set(refusals)
        try:
            response = self.get_response(request)
            _record_unrecorded_refusal(request, response, refusals)
            return response
        finally:
            client_ip_var.reset(tokens[0])
            raised_refusals.reset(tokens[1])

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        refusals: list[PermissionDenied] = []
        tokens = client_ip_var.set(normalise_ip(request.META.get("REMOTE_ADDR"))), raised_refusals.set(refusals)
        try:
            response = await self.get_response(request)
            if response.status_code == 403 and refusals:
                await sync_to_async(_record_unrecorded_refusal)(request, response, refusals)
            return response
        finally:
            client_ip_var.reset(tokens[0])
            raised_refusals.reset(tokens[1])


def _record_unrecorded_refusal(request: HttpRequest, response: HttpResponse, refusals: list[PermissionDenied]) -> None:
    if response.status_code != 403 or not refusals or was_denial_recorded(request):
        return
    refusal = refusals[-1]  # the one the page answered with
    record_access_denied(request=request, message=refusal.message, team_id=getattr(refusal, "team_id", None))
