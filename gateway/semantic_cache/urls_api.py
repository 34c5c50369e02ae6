"""REST API for the semantic cache, mounted under /api/v1/."""

from django.urls import path

from core import converters  # noqa: F401 - registers the <id:...> converter
from gateway.semantic_cache import api

urlpatterns = [
    path("applications/<id:application_id>/cache/", api.CacheSettingsView.as_view(), name="api-cache"),
    path("applications/<id:application_id>/cache/entries/", api.CacheEntryListView.as_view(), name="api-cache-entries"),
]
