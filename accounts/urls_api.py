from django.urls import path

from accounts import api
from core import converters  # noqa: F401 - registers the <id:...> converter

urlpatterns = [
    path("teams/", api.TeamListView.as_view(), name="api-teams"),
    path("teams/<id:team_id>/", api.TeamDetailView.as_view(), name="api-team"),
    path("teams/<id:team_id>/members/", api.MemberListView.as_view(), name="api-team-members"),
    path("teams/<id:team_id>/members/<id:user_id>/", api.MemberDetailView.as_view(), name="api-team-member"),
    path("teams/<id:team_id>/users/", api.TeamUserCreateView.as_view(), name="api-team-users"),
    path("teams/<id:team_id>/invitations/", api.InvitationListView.as_view(), name="api-team-invitations"),
    path(
        "teams/<id:team_id>/invitations/<id:invitation_id>/",
        api.InvitationDetailView.as_view(),
        name="api-team-invitation",
    ),
    path("applications/", api.ApplicationListView.as_view(), name="api-applications"),
    path("applications/<id:application_id>/", api.ApplicationDetailView.as_view(), name="api-application"),
    path(
        "applications/<id:application_id>/archive/",
        api.ApplicationArchiveView.as_view(),
        name="api-application-archive",
    ),
    path(
        "applications/<id:application_id>/restore/",
        api.ApplicationRestoreView.as_view(),
        name="api-application-restore",
    ),
    path("applications/<id:application_id>/keys/", api.ApiKeyListView.as_view(), name="api-keys"),
    path("applications/<id:application_id>/keys/<id:key_id>/", api.ApiKeyDetailView.as_view(), name="api-key"),
    path(
        "applications/<id:application_id>/keys/<id:key_id>/revoke/",
        api.ApiKeyRevokeView.as_view(),
        name="api-key-revoke",
    ),
    path("me", api.MeView.as_view(), name="api-me"),
    path("me/", api.MeView.as_view(schema=None)),
]
