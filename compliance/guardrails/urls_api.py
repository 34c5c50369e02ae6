from django.urls import path

from compliance.guardrails import api
from core import converters  # noqa: F401 - registers the <id:...> converter

urlpatterns = [
    path(
        "applications/<id:application_id>/guardrails/",
        api.GuardrailPolicyView.as_view(),
        name="api-application-guardrails",
    ),
    path("classification-rules/", api.ClassificationRuleListView.as_view(), name="api-classification-rules"),
    path(
        "classification-rules/<id:rule_id>/",
        api.ClassificationRuleDetailView.as_view(),
        name="api-classification-rule",
    ),
    path("data-sources/", api.DataSourceListView.as_view(), name="api-data-sources"),
    path("data-sources/<id:source_id>/", api.DataSourceDetailView.as_view(), name="api-data-source"),
]
