from django.urls import path

from compliance import api
from core import converters  # noqa: F401 - registers the <id:...> converter

urlpatterns = [
    path("audit/events/", api.AuditEventListView.as_view(), name="api-audit-events"),
    path("audit/verify/", api.AuditVerifyView.as_view(), name="api-audit-verify"),
    path("audit/export/", api.AuditExportStreamView.as_view(), name="api-audit-export"),
    path("audit/exports/", api.AuditExportListView.as_view(), name="api-audit-exports"),
    path("audit/exports/<uuid:export_id>/", api.AuditExportDetailView.as_view(), name="api-audit-export-detail"),
    path(
        "audit/exports/<uuid:export_id>/download/",
        api.AuditExportDownloadView.as_view(),
        name="api-audit-export-download",
    ),
    path("teams/<id:team_id>/retention/", api.RetentionView.as_view(), name="api-team-retention"),
]
