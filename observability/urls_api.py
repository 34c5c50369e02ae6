from django.urls import path

from observability import api

urlpatterns = [
    path("calls/", api.CallListView.as_view(), name="api-calls"),
    # Any string reaches the view, so that a malformed id is a 400 naming it rather than a bare 404.
    path("calls/<str:call_id>/", api.CallDetailView.as_view(), name="api-call"),
]
