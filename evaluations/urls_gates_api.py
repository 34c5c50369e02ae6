"""Compare and gate routes; included first by evaluations.urls_api, so that eval-runs/compare/ is
not taken for a run id."""

from django.urls import path

from evaluations import api_gates

urlpatterns = [
    path("eval-runs/compare/", api_gates.RunCompareView.as_view(), name="api-eval-runs-compare"),
    path(
        "eval-runs/compare/items/<str:item_key>/",
        api_gates.RunCompareItemView.as_view(),
        name="api-eval-runs-compare-item",
    ),
    path("evaluation-gates/", api_gates.GateListView.as_view(), name="api-evaluation-gates"),
    path("evaluation-gates/<int:gate_id>/", api_gates.GateDetailView.as_view(), name="api-evaluation-gate"),
    path(
        "evaluation-gates/checks/<str:check_id>/",
        api_gates.GateCheckDetailView.as_view(),
        name="api-evaluation-gate-check",
    ),
    path(
        "evaluation-gates/checks/<str:check_id>/override/",
        api_gates.GateOverrideView.as_view(),
        name="api-evaluation-gate-override",
    ),
    path("evaluations/gate/", api_gates.GateCheckView.as_view(), name="api-evaluations-gate"),
]
