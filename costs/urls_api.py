from django.urls import path

from core import converters  # noqa: F401 - registers the <id:...> converter
from costs import api

urlpatterns = [
    path("budgets/", api.BudgetListView.as_view(), name="api-budgets"),
    path("budgets/<id:budget_id>/", api.BudgetDetailView.as_view(), name="api-budget"),
    path("budgets/<id:budget_id>/status/", api.BudgetStatusView.as_view(), name="api-budget-status"),
    path("costs/summary/", api.CostSummaryView.as_view(), name="api-costs-summary"),
]
