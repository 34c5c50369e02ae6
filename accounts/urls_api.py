from django.urls import path

from accounts import api

urlpatterns = [
    path("teams/", api.TeamListView.as_view(), name="api-teams"),
    path("teams/<int:team_id>/", api.TeamDetailView.as_view(), name="api-team"),
    path("teams/<int:team_id>/members/", api.MemberListView.as_view(), name="api-team-members"),
    path("teams/<int:team_id>/members/<int:user_id>/", api.MemberDetailView.as_view(), name="api-team-member"),
    path("applications/", api.ApplicationListView.as_view(), name="api-applications"),
    path("applications/<int:application_id>/", api.ApplicationDetailView.as_view(), name="api-application"),
    path("applications/<int:application_id>/keys/", api.ApiKeyListView.as_view(), name="api-keys"),
    path("applications/<int:application_id>/keys/<int:key_id>/", api.ApiKeyDetailView.as_view(), name="api-key"),
    path(
        "applications/<int:application_id>/keys/<int:key_id>/revoke/",
        api.ApiKeyRevokeView.as_view(),
        name="api-key-revoke",
    ),
    path("me", api.MeView.as_view(), name="api-me"),
    path("me/", api.MeView.as_view(schema=None)),
]
