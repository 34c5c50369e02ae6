from django.urls import path

from observability import views

app_name = "observability"

urlpatterns = [
    path("", views.call_list, name="calls"),
    path("<uuid:call_id>/", views.call_detail, name="call"),
]
