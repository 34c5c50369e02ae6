from django.urls import path

from core import converters  # noqa: F401 - registers the <id:...> converter
from costs import views

app_name = "costs"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("budgets/", views.budget_list, name="budgets"),
    path("budgets/create/", views.budget_create, name="budget-create"),
    path("budgets/<id:budget_id>/", views.budget_update, name="budget-update"),
    path("budgets/<id:budget_id>/delete/", views.budget_delete, name="budget-delete"),
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/read/", views.notification_read_all, name="notifications-read-all"),
    path("notifications/<id:notification_id>/read/", views.notification_read, name="notification-read"),
]
