"""Cache pages, mounted at /gateway/cache/ (before the gateway's own pages)."""

from django.urls import path

from core import converters  # noqa: F401 - registers the <id:...> converter
from gateway.semantic_cache import views

app_name = "semantic_cache"

urlpatterns = [
    path("", views.cache_index, name="index"),
    path("<id:application_id>/", views.cache_page, name="page"),
    path("<id:application_id>/purge/", views.cache_purge, name="purge"),
    path("<id:application_id>/shadow-reviews/", views.shadow_review, name="shadow-review"),
]
