"""Gateway pages: the model catalog and routing (the lead's Calls pages mount separately)."""

from django.urls import path

from core import converters  # noqa: F401 - registers the <id:...> converter
from gateway import views

app_name = "gateway"

urlpatterns = [
    path("", views.catalog_page, name="catalog"),
    path("providers/new/", views.provider_create, name="provider-create"),
    path("providers/<id:provider_id>/", views.provider_edit, name="provider-edit"),
    path("providers/<id:provider_id>/enabled/", views.provider_enabled, name="provider-enabled"),
    path("providers/<id:provider_id>/test/", views.provider_test, name="provider-test"),
    path("models/new/", views.model_create, name="model-create"),
    path("models/<id:model_id>/", views.model_edit, name="model-edit"),
    path("models/<id:model_id>/enabled/", views.model_enabled, name="model-enabled"),
    path("routing/<id:application_id>/", views.routing_page, name="routing"),
    path("routing/<id:application_id>/simulate/", views.routing_simulate, name="routing-simulate"),
]
