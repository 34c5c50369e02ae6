from django.urls import path, register_converter

from accounts import views


class DatabaseIdConverter:
    """A positive id that fits a 64-bit column: a longer one is a 404 at routing, not a
    database overflow error in a lookup (SQLite raises one for foreign-key lookups)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(DatabaseIdConverter, "database_id")

app_name = "settings"

urlpatterns = [
    path("", views.team_list, name="teams"),
    path("teams/create/", views.team_create, name="team-create"),
    path("teams/<database_id:team_id>/", views.team_detail, name="team"),
    path("teams/<database_id:team_id>/update/", views.team_update, name="team-update"),
    path("teams/<database_id:team_id>/members/add/", views.member_add, name="team-members-add"),
    path(
        "teams/<database_id:team_id>/members/<database_id:user_id>/update/", views.member_update, name="member-update"
    ),
    path(
        "teams/<database_id:team_id>/members/<database_id:user_id>/remove/", views.member_remove, name="member-remove"
    ),
    path("applications/create/", views.application_create, name="application-create"),
    path("applications/<database_id:application_id>/", views.application_detail, name="application"),
    path("applications/<database_id:application_id>/update/", views.application_update, name="application-update"),
    path("applications/<database_id:application_id>/keys/create/", views.key_create, name="key-create"),
    path(
        "applications/<database_id:application_id>/keys/<database_id:key_id>/revoke/",
        views.key_revoke,
        name="key-revoke",
    ),
]
