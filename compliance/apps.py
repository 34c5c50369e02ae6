from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance: audit trail"

    def ready(self) -> None:
        # The house style calls logic explicitly instead of using signals, but Django's login
        # view and authentication backends offer no other hook for logins and failed logins:
        # these two auth signals are the only place to record them.
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from compliance.audit import record_access_denied
        from core.api.exceptions import access_denied

        access_denied.register(record_access_denied)

        user_logged_in.connect(_on_login, dispatch_uid="compliance-audit-login")
        user_login_failed.connect(_on_login_failed, dispatch_uid="compliance-audit-login-failed")


def _on_login(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    from compliance.audit import record_login

    if user is not None:
        record_login(user=user, request=request)


def _on_login_failed(sender: Any, credentials: Any = None, request: Any = None, **kwargs: Any) -> None:
    from compliance.audit import record_login_failed

    record_login_failed(credentials=dict(credentials or {}), request=request)
