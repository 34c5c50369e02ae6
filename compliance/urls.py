from django.urls import path

from compliance import views
from core import converters  # noqa: F401 - registers the <id:...> converter

app_name = "compliance"

urlpatterns = [
    path("", views.audit_page, name="audit"),
    path("events/", views.events_partial, name="events"),
    path("denied/", views.denied_page, name="denied"),
    path("verify/", views.verify, name="verify"),
    path("exports/", views.exports, name="exports"),
    path("exports/<uuid:export_id>/download/", views.export_download, name="export-download"),
    path("retention/<id:team_id>/", views.retention_update, name="retention"),
]
