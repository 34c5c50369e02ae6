"""REST API for the model catalog and routing, mounted under /api/v1/."""

from django.urls import path

from core import converters  # noqa: F401 - registers the <id:...> converter
from gateway import api_config

urlpatterns = [
    path("providers/", api_config.ProviderListView.as_view(), name="api-providers"),
    path("providers/<id:provider_id>/", api_config.ProviderDetailView.as_view(), name="api-provider"),
    path("providers/<id:provider_id>/test/", api_config.ProviderTestView.as_view(), name="api-provider-test"),
    path("models/", api_config.LanguageModelListView.as_view(), name="api-models"),
    path("models/<id:model_id>/", api_config.LanguageModelDetailView.as_view(), name="api-model"),
    path("applications/<id:application_id>/routing/", api_config.RoutingView.as_view(), name="api-routing"),
]
