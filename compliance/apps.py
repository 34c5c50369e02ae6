from __future__ import annotations

from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in, user_login_failed

from accounts.hooks import audit_event
from core.api.exceptions import access_denied


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance: audit trail"

    def ready(self) -> None:
        # Imported here, not at the top: compliance.audit imports the app's models, which
        # Django's app registry loads only after every AppConfig is created.
        from compliance.audit import audit_record, on_user_logged_in, on_user_login_failed, record_access_denied

        audit_event.register(audit_record)
        access_denied.register(record_access_denied)

        # The house style calls logic explicitly instead of using signals, but Django's login
        # view and authentication backends offer no other hook for logins and failed logins:
        # these two auth signals are the only place to record them.
        user_logged_in.connect(on_user_logged_in, dispatch_uid="compliance-audit-login")
        user_login_failed.connect(on_user_login_failed, dispatch_uid="compliance-audit-login-failed")
