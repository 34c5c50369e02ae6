from django.urls import path

from accounts import views
from core import converters  # noqa: F401 - registers the <id:...> converter

app_name = "settings"

urlpatterns = [
    path("", views.team_list, name="teams"),
    path("teams/create/", views.team_create, name="team-create"),
    path("teams/<id:team_id>/", views.team_detail, name="team"),
    path("teams/<id:team_id>/update/", views.team_update, name="team-update"),
    path("teams/<id:team_id>/members/add/", views.member_add, name="team-members-add"),
    path("teams/<id:team_id>/members/<id:user_id>/update/", views.member_update, name="member-update"),
    path("teams/<id:team_id>/members/<id:user_id>/remove/", views.member_remove, name="member-remove"),
    path("teams/<id:team_id>/users/create/", views.user_create, name="user-create"),
    path("teams/<id:team_id>/invitations/create/", views.invitation_create, name="invitation-create"),
    path(
        "teams/<id:team_id>/invitations/<id:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation-revoke",
    ),
    path("applications/create/", views.application_create, name="application-create"),
    path("applications/<id:application_id>/", views.application_detail, name="application"),
    path("applications/<id:application_id>/update/", views.application_update, name="application-update"),
    path("applications/<id:application_id>/archive/", views.application_archive, name="application-archive"),
    path("applications/<id:application_id>/restore/", views.application_restore, name="application-restore"),
    path("applications/<id:application_id>/delete/", views.application_delete, name="application-delete"),
    path("applications/<id:application_id>/keys/create/", views.key_create, name="key-create"),
    path(
        "applications/<id:application_id>/keys/<id:key_id>/revoke/",
        views.key_revoke,
        name="key-revoke",
    ),
]
