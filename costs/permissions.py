"""The costs app's permission strings (granted to roles in accounts/roles.py)."""

VIEW_BUDGET = "costs.view_budget"
ADD_BUDGET = "costs.add_budget"
CHANGE_BUDGET = "costs.change_budget"
DELETE_BUDGET = "costs.delete_budget"
VIEW_SPEND = "costs.view_spend"
