"""REST API for teams, members, applications, API keys and the caller itself."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import invitations, selectors, services
from accounts.authentication import get_caller
from accounts.models import MEMBER_ROLES, ApiKey, Application, Invitation, Membership, Role, Team, validate_time_zone
from accounts.names import validate_application_name
from core.api.filters import IdFilter
from core.api.serializers import ChoiceField, ClearanceField, IdField, StrictSerializer, validated
from core.dates import MomentField

# Output ---------------------------------------------------------------------------


class TeamSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()
    clearance = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["id", "name", "description", "time_zone", "role", "clearance", "created_at"]

    def get_role(self, team: Team) -> str | None:
        return get_caller(self.context["request"]).role_in(team.id)

    def get_clearance(self, team: Team) -> str:
        return ClearanceField().to_representation(get_caller(self.context["request"]).clearance_in(team.id))


class MembershipSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.id")
    username = serializers.CharField(source="user.username")
    email = serializers.CharField(source="user.email")
    clearance = ClearanceField()

    class Meta:
        model = Membership
        fields = ["user_id", "username", "email", "team_id", "role", "clearance", "created_at"]


class ApplicationSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id")
    team_name = serializers.CharField(source="team.name")

    class Meta:
        model = Application
        fields = ["id", "team", "team_name", "name", "description", "archived_at", "created_at"]


class ApiKeySerializer(serializers.ModelSerializer):
    prefix = serializers.SerializerMethodField()
    clearance = ClearanceField()
    application = serializers.IntegerField(source="application_id")
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    is_active = serializers.BooleanField()

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "application",
            "name",
            "prefix",
            "role",
            "clearance",
            "is_active",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ]

    def get_prefix(self, api_key: ApiKey) -> str:
        return f"cp_{api_key.prefix}"


class ApiKeyCreatedSerializer(ApiKeySerializer):
    secret = serializers.SerializerMethodField()

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]

    def get_secret(self, api_key: ApiKey) -> str:
        return str(self.context["secret"])


# Input ----------------------------------------------------------------------------


class TeamCreateInput(StrictSerializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    time_zone = serializers.CharField(required=False, default="UTC", validators=[validate_time_zone])


class TeamUpdateInput(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    time_zone = serializers.CharField(required=False, validators=[validate_time_zone])


class MemberAddInput(StrictSerializer):
    username = serializers.CharField(max_length=150)
    role = ChoiceField(choices=MEMBER_ROLES, default=Role.VIEWER)
    clearance = ClearanceField(default="internal")


class UserCreateInput(StrictSerializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField()
    role = ChoiceField(choices=MEMBER_ROLES, default=Role.VIEWER)
    clearance = ClearanceField(default="internal")
    password = serializers.CharField(
        required=False, allow_null=True, default=None, write_only=True, trim_whitespace=False
    )


class MemberUpdateInput(StrictSerializer):
    role = ChoiceField(choices=MEMBER_ROLES, required=False)
    clearance = ClearanceField(required=False)


class ApplicationCreateInput(StrictSerializer):
    team = IdField()
    name = serializers.CharField(max_length=100, validators=[validate_application_name])
    description = serializers.CharField(required=False, allow_blank=True, default="")


class ApplicationUpdateInput(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, validators=[validate_application_name])
    description = serializers.CharField(required=False, allow_blank=True)


class ApiKeyCreateInput(StrictSerializer):
    name = serializers.CharField(max_length=100)
    role = ChoiceField(choices=Role.choices, default=Role.APPLICATION)
    clearance = ClearanceField(default="internal")
    expires_at = MomentField(required=False, allow_null=True, default=None)


# Filters --------------------------------------------------------------------------


class ApplicationFilter(django_filters.FilterSet):
    team = IdFilter(field_name="team_id")
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    archived = django_filters.BooleanFilter(
        field_name="archived_at",
        lookup_expr="isnull",
        exclude=True,
        help_text="true: only archived applications; false (the default): only active ones.",
    )

    class Meta:
        model = Application
        fields = ["team", "name", "archived"]


class MembershipFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=MEMBER_ROLES)

    class Meta:
        model = Membership
        fields = ["role"]


class ApiKeyFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)
    revoked = django_filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = ApiKey
        fields = ["role", "revoked"]


# Views ----------------------------------------------------------------------------


class TeamListView(generics.ListAPIView):
    serializer_class = TeamSerializer

    def get_queryset(self) -> QuerySet[Team]:
        return selectors.team_list(caller=get_caller(self.request)).order_by("-id")

    @extend_schema(request=TeamCreateInput, responses={201: TeamSerializer})
    def post(self, request: Request) -> Response:
        data = validated(TeamCreateInput, request)
        team = services.team_create(caller=get_caller(request), **data)
        return Response(TeamSerializer(team, context={"request": request}).data, status=status.HTTP_201_CREATED)


class TeamDetailView(APIView):
    @extend_schema(responses=TeamSerializer)
    def get(self, request: Request, team_id: int) -> Response:
        team = selectors.team_get(caller=get_caller(request), team_id=team_id)
        return Response(TeamSerializer(team, context={"request": request}).data)

    @extend_schema(request=TeamUpdateInput, responses=TeamSerializer)
    def patch(self, request: Request, team_id: int) -> Response:
        caller = get_caller(request)
        team = selectors.team_get(caller=caller, team_id=team_id)
        team = services.team_update(caller=caller, team=team, **validated(TeamUpdateInput, request))
        return Response(TeamSerializer(team, context={"request": request}).data)


class MemberListView(generics.ListAPIView):
    serializer_class = MembershipSerializer
    filterset_class = MembershipFilter

    def get_queryset(self) -> QuerySet[Membership]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL kwargs
            return Membership.objects.none()
        caller = get_caller(self.request)
        team = selectors.team_get(caller=caller, team_id=self.kwargs["team_id"])
        return selectors.membership_list(caller=caller, team=team)

    @extend_schema(request=MemberAddInput, responses={201: MembershipSerializer})
    def post(self, request: Request, team_id: int) -> Response:
        caller = get_caller(request)
        team = selectors.team_get(caller=caller, team_id=team_id)
        membership = services.membership_add(caller=caller, team=team, **validated(MemberAddInput, request))
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailView(APIView):
    def _membership(self, request: Request, team_id: int, user_id: int) -> Membership:
        caller = get_caller(request)
        team = selectors.team_get(caller=caller, team_id=team_id)
        return selectors.membership_get(caller=caller, team=team, user_id=user_id)

    @extend_schema(responses=MembershipSerializer)
    def get(self, request: Request, team_id: int, user_id: int) -> Response:
        return Response(MembershipSerializer(self._membership(request, team_id, user_id)).data)

    @extend_schema(request=MemberUpdateInput, responses=MembershipSerializer)
    def patch(self, request: Request, team_id: int, user_id: int) -> Response:
        membership = self._membership(request, team_id, user_id)
        membership = services.membership_update(
            caller=get_caller(request), membership=membership, **validated(MemberUpdateInput, request)
        )
        return Response(MembershipSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, team_id: int, user_id: int) -> Response:
        membership = self._membership(request, team_id, user_id)
        services.membership_remove(caller=get_caller(request), membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApplicationListView(generics.ListAPIView):
    serializer_class = ApplicationSerializer
    filterset_class = ApplicationFilter

    def get_queryset(self) -> QuerySet[Application]:
        # Archived applications are listed apart: only with ?archived=true.
        archived = None if "archived" in self.request.query_params else False
        return selectors.application_list(caller=get_caller(self.request), archived=archived)

    @extend_schema(request=ApplicationCreateInput, responses={201: ApplicationSerializer})
    def post(self, request: Request) -> Response:
        caller = get_caller(request)
        data = validated(ApplicationCreateInput, request)
        team = selectors.team_get(caller=caller, team_id=data.pop("team"))
        application = services.application_create(caller=caller, team=team, **data)
        return Response(ApplicationSerializer(application).data, status=status.HTTP_201_CREATED)


class ApplicationDetailView(APIView):
    @extend_schema(responses=ApplicationSerializer)
    def get(self, request: Request, application_id: int) -> Response:
        application = selectors.application_get(caller=get_caller(request), application_id=application_id)
        return Response(ApplicationSerializer(application).data)

    @extend_schema(request=ApplicationUpdateInput, responses=ApplicationSerializer)
    def patch(self, request: Request, application_id: int) -> Response:
        caller = get_caller(request)
        application = selectors.application_get(caller=caller, application_id=application_id)
        application = services.application_update(
            caller=caller, application=application, **validated(ApplicationUpdateInput, request)
        )
        return Response(ApplicationSerializer(application).data)

    @extend_schema(
        responses={204: None},
        description="Delete an application that has no recorded calls (409 otherwise: archive it instead).",
    )
    def delete(self, request: Request, application_id: int) -> Response:
        caller = get_caller(request)
        application = selectors.application_get(caller=caller, application_id=application_id)
        services.application_delete(caller=caller, application=application)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApplicationArchiveView(APIView):
    http_method_names = ["post", "options"]

    @extend_schema(
        request=None,
        responses=ApplicationSerializer,
        description="Archive: the application's keys stop working on their next request. Team admins.",
    )
    def post(self, request: Request, application_id: int) -> Response:
        caller = get_caller(request)
        application = selectors.application_get(caller=caller, application_id=application_id)
        return Response(
            ApplicationSerializer(services.application_archive(caller=caller, application=application)).data
        )


class ApplicationRestoreView(APIView):
    http_method_names = ["post", "options"]

    @extend_schema(request=None, responses=ApplicationSerializer, description="Undo an archive. Team admins.")
    def post(self, request: Request, application_id: int) -> Response:
        caller = get_caller(request)
        application = selectors.application_get(caller=caller, application_id=application_id)
        return Response(
            ApplicationSerializer(services.application_restore(caller=caller, application=application)).data
        )


class ApiKeyListView(generics.ListAPIView):
    serializer_class = ApiKeySerializer
    filterset_class = ApiKeyFilter

    def get_queryset(self) -> QuerySet[ApiKey]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL kwargs
            return ApiKey.objects.none()
        caller = get_caller(self.request)
        application = selectors.application_get(caller=caller, application_id=self.kwargs["application_id"])
        return selectors.api_key_list(caller=caller, application=application)

    @extend_schema(request=ApiKeyCreateInput, responses={201: ApiKeyCreatedSerializer})
    def post(self, request: Request, application_id: int) -> Response:
        caller = get_caller(request)
        application = selectors.application_get(caller=caller, application_id=application_id)
        api_key, secret = services.api_key_create(
            caller=caller, application=application, **validated(ApiKeyCreateInput, request)
        )
        body = ApiKeyCreatedSerializer(api_key, context={"secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class ApiKeyDetailView(APIView):
    def _api_key(self, request: Request, application_id: int, key_id: int) -> ApiKey:
        caller = get_caller(request)
        application = selectors.application_get(caller=caller, application_id=application_id)
        return selectors.api_key_get(caller=caller, application=application, key_id=key_id)

    @extend_schema(responses=ApiKeySerializer)
    def get(self, request: Request, application_id: int, key_id: int) -> Response:
        return Response(ApiKeySerializer(self._api_key(request, application_id, key_id)).data)

    @extend_schema(responses=ApiKeySerializer, description="Revoke the key (it stays listed, inactive).")
    def delete(self, request: Request, application_id: int, key_id: int) -> Response:
        api_key = services.api_key_revoke(
            caller=get_caller(request), api_key=self._api_key(request, application_id, key_id)
        )
        return Response(ApiKeySerializer(api_key).data)


class ApiKeyRevokeView(ApiKeyDetailView):
    http_method_names = ["post", "options"]

    @extend_schema(request=None, responses=ApiKeySerializer)
    def post(self, request: Request, application_id: int, key_id: int) -> Response:
        return self.delete(request, application_id, key_id)


class MeView(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        caller = get_caller(request)
        clearance = ClearanceField()
        teams = selectors.team_list(caller=caller).order_by("name")
        body: dict[str, Any] = {
            "kind": "api_key" if caller.is_api_key else "user",
            "user": None,
            "api_key": None,
            "application": None,
            "teams": [
                {
                    "id": team.id,
                    "name": team.name,
                    "role": caller.role_in(team.id),
                    "clearance": clearance.to_representation(caller.clearance_in(team.id)),
                }
                for team in teams
            ],
        }
        if caller.api_key is not None:
            api_key = caller.api_key
            body["api_key"] = {
                "id": api_key.id,
                "name": api_key.name,
                "prefix": f"cp_{api_key.prefix}",
                "role": api_key.role,
                "clearance": clearance.to_representation(api_key.clearance),
                "expires_at": api_key.expires_at,
            }
            body["application"] = {"id": api_key.application_id, "name": api_key.application.name}
            body["team"] = body["teams"][0] if body["teams"] else None
            body["role"] = api_key.role
            body["clearance"] = clearance.to_representation(api_key.clearance)
        elif caller.user is not None:
            body["user"] = {"id": caller.user.pk, "username": caller.user.get_username(), "email": caller.user.email}
        return Response(body)


class TeamUserCreateView(APIView):
    http_method_names = ["post", "options"]

    @extend_schema(
        request=UserCreateInput,
        responses={201: dict},
        description="Create a user account as a member of this team (team admins; role and clearance no higher "
        "than yours). Without `password`, one is generated and returned once as `password`.",
    )
    def post(self, request: Request, team_id: int) -> Response:
        caller = get_caller(request)
        team = selectors.team_get(caller=caller, team_id=team_id)
        user, generated = services.user_create(caller=caller, team=team, **validated(UserCreateInput, request))
        membership = selectors.membership_get(caller=caller, team=team, user_id=user.pk)
        body = {**MembershipSerializer(membership).data, "password": generated}
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


# Invitations ------------------------------------------------------------------------


class InvitationSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id")
    clearance = ClearanceField()
    state = ChoiceField(choices=Invitation.State.choices)
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    accepted_by = serializers.CharField(source="accepted_by.username", default=None, allow_null=True)

    class Meta:
        model = Invitation
        fields = [
            "id",
            "team",
            "email",
            "role",
            "clearance",
            "state",
            "created_by",
            "created_at",
            "expires_at",
            "accepted_by",
            "accepted_at",
            "revoked_at",
        ]


class InvitationCreatedSerializer(InvitationSerializer):
    url = serializers.SerializerMethodField(help_text="The one-time link to send to the invitee; shown only here.")

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "url"]

    def get_url(self, invitation: Invitation) -> str:
        return str(self.context["url"])


class InvitationCreateInput(StrictSerializer):
    email = serializers.EmailField()
    role = ChoiceField(choices=MEMBER_ROLES, default=Role.VIEWER)
    clearance = ClearanceField(default="internal")
    expires_in_days = serializers.IntegerField(
        min_value=1,
        max_value=invitations.MAX_EXPIRY_DAYS,
        default=invitations.DEFAULT_EXPIRY_DAYS,
        help_text=f"Days the link stays usable: 1 to {invitations.MAX_EXPIRY_DAYS}.",
    )


class InvitationListView(generics.ListAPIView):
    serializer_class = InvitationSerializer

    def get_queryset(self) -> QuerySet[Invitation]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL kwargs
            return Invitation.objects.none()
        caller = get_caller(self.request)
        team = selectors.team_get(caller=caller, team_id=self.kwargs["team_id"])
        return selectors.invitation_list(caller=caller, team=team)

    @extend_schema(
        request=InvitationCreateInput,
        responses={201: InvitationCreatedSerializer},
        description="Invite someone to this team (team admins; role and clearance no higher than yours). The "
        "response's `url` is a one-time link, returned only once: its holder picks a username and password "
        "and joins the team with this role and clearance.",
    )
    def post(self, request: Request, team_id: int) -> Response:
        caller = get_caller(request)
        team = selectors.team_get(caller=caller, team_id=team_id)
        invitation, token = invitations.invitation_create(
            caller=caller, team=team, **validated(InvitationCreateInput, request)
        )
        url = request.build_absolute_uri(reverse("invitation", args=[token]))
        body = InvitationCreatedSerializer(invitation, context={"url": url}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class InvitationDetailView(APIView):
    http_method_names = ["get", "delete", "options"]

    def _invitation(self, request: Request, team_id: int, invitation_id: int) -> Invitation:
        caller = get_caller(request)
        team = selectors.team_get(caller=caller, team_id=team_id)
        return selectors.invitation_get(caller=caller, team=team, invitation_id=invitation_id)

    @extend_schema(responses=InvitationSerializer)
    def get(self, request: Request, team_id: int, invitation_id: int) -> Response:
        return Response(InvitationSerializer(self._invitation(request, team_id, invitation_id)).data)

    @extend_schema(responses=InvitationSerializer, description="Revoke the invitation: its link stops working.")
    def delete(self, request: Request, team_id: int, invitation_id: int) -> Response:
        invitation = invitations.invitation_revoke(
            caller=get_caller(request), invitation=self._invitation(request, team_id, invitation_id)
        )
        return Response(InvitationSerializer(invitation).data)
