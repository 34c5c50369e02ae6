from django.urls import path

from compliance.guardrails import views
from core import converters  # noqa: F401 - registers the <id:...> converter

app_name = "guardrails"
urlpatterns = [
    path("", views.index, name="index"),
    path("applications/<id:application_id>/", views.policy, name="policy"),
]
