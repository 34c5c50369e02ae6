from django.urls import path

from accounts import views

app_name = "settings"

urlpatterns = [
    path("", views.team_list, name="teams"),
    path("teams/<int:team_id>/", views.team_detail, name="team"),
    path("applications/<int:application_id>/", views.application_detail, name="application"),
]
