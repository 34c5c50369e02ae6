"""Settings pages: teams, members, applications and API keys, over accounts' selectors and services.

Each page is built from sections (partials). An htmx form posts to its own endpoint and gets
back only its section, with field errors and the status of a failure (400, 403 or 409); a
plain form post gets a redirect after success, or the whole page with the errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods
from django_htmx.middleware import HtmxDetails

from accounts import invitations, roles, selectors, services
from accounts.authentication import get_caller
from accounts.caller import Caller, caller_for_user
from accounts.forms import (
    ApiKeyCreateForm,
    ApplicationCreateForm,
    ApplicationUpdateForm,
    InvitationAcceptForm,
    InvitationCreateForm,
    MemberAddForm,
    MemberUpdateForm,
    TeamForm,
    UserCreateForm,
)
from accounts.login_throttle import ThrottledAuthenticationForm
from accounts.models import ApiKey, Application, Invitation, Membership, Role, Team
from core.classification import Clearance
from core.errors import ApplicationError, NotFound
from core.htmx import htmx_redirect, render_page
from core.pages import Refusal, page_action

Result = TypeVar("Result")

require_page = require_http_methods(["GET", "HEAD"])
require_post = require_http_methods(["POST"])


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@dataclass
class Feedback:
    """What a section says after a form post: a success notice or a refusal (shown as an alert)."""

    notices: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def refused(cls, section: str, refusal: Refusal, *, prefix: str = "") -> Feedback:
        """The section's alert for a refusal (none when the form's fields carry the errors)."""
        return cls(errors={section: prefix + refusal.message} if refusal.is_alert else {})


def _refreshed_caller(request: HttpRequest) -> Caller:
    # The caller is built once per request; after a write to the user's own memberships its
    # grants are stale, and the re-rendered section must reflect the new ones.
    return caller_for_user(request.user)


def _done(request: HtmxHttpRequest, message: str, url: str) -> HttpResponse:
    """A plain form post succeeded: redirect to the page, saying what happened."""
    messages.success(request, message)
    return redirect(url)


@dataclass(frozen=True)
class Section:
    """A section of a settings page that a form posts to: its key in the page's notices and
    errors, the page, and the partial that renders the section alone."""

    name: str
    page: str
    partial: str


def _section_done(
    request: HtmxHttpRequest,
    message: str,
    *,
    url: str,
    section: Section,
    context: Callable[..., dict[str, Any]],
) -> HttpResponse:
    """A form post succeeded: a redirect with the notice for a plain post, else the section
    re-rendered with `context(feedback=the notice)`."""
    if not request.htmx:
        return _done(request, message, url)
    feedback = Feedback(notices={section.name: message})
    return render_page(request, page=section.page, partial=section.partial, context=context(feedback=feedback))


def _section_post(
    request: HtmxHttpRequest,
    action: Callable[[], Result],
    *,
    section: Section,
    success: Callable[[Result], HttpResponse],
    context: Callable[..., dict[str, Any]],
    form: forms.Form | None = None,
    form_name: str = "",
    refusal_prefix: str = "",
    errors_on_fields: bool = True,
    propagate: tuple[type[ApplicationError], ...] = (),
) -> HttpResponse:
    """`page_action` for one section: a refusal re-renders it with `context(feedback=its alert)`,
    passing the posted form back as the keyword `form_name` when there is one."""

    def refused(refusal: Refusal) -> dict[str, Any]:
        posted = {form_name: form} if form_name else {}
        return context(feedback=Feedback.refused(section.name, refusal, prefix=refusal_prefix), **posted)

    return page_action(
        request,
        action,
        form=form,
        success=success,
        context=refused,
        page=section.page,
        partial=section.partial,
        errors_on_fields=errors_on_fields,
        propagate=propagate,
    )


# Teams and applications: /settings/ ------------------------------------------------

TEAM_LIST_PAGE = "accounts/team_list.html"
TEAM_LIST_CONTENT = "accounts/partials/_team_list_content.html"
TEAMS_SECTION = "accounts/partials/_teams.html"
APPLICATIONS_SECTION = "accounts/partials/_applications.html"
TEAMS = Section("teams", page=TEAM_LIST_PAGE, partial=TEAMS_SECTION)
APPLICATIONS = Section("applications", page=TEAM_LIST_PAGE, partial=APPLICATIONS_SECTION)


@dataclass(frozen=True)
class TeamRow:
    team: Team
    role: str
    clearance: str


def _team_list_context(
    caller: Caller,
    *,
    team_form: TeamForm | None = None,
    application_form: ApplicationCreateForm | None = None,
    feedback: Feedback | None = None,
) -> dict[str, Any]:
    teams = list(selectors.team_list(caller=caller))
    role_labels = dict(Role.choices)
    team_rows = [
        TeamRow(
            team=team,
            role=role_labels.get(caller.role_in(team.id) or "", ""),
            clearance=Clearance(caller.clearance_in(team.id)).label,
        )
        for team in teams
    ]
    teams_for_applications = [team for team in teams if caller.has_permission(roles.ADD_APPLICATION, team_id=team.id)]
    application_form = application_form or ApplicationCreateForm()
    application_form.offer_teams(teams_for_applications)
    feedback = feedback or Feedback()
    applications = list(selectors.application_list(caller=caller))
    return {
        "team_rows": team_rows,
        "can_create_teams": caller.can_create_teams,
        "team_form": team_form or TeamForm(),
        # One query for both lists: archived applications are listed apart.
        "applications": [application for application in applications if not application.is_archived],
        "archived_applications": [application for application in applications if application.is_archived],
        "can_create_applications": bool(teams_for_applications),
        "application_form": application_form,
        "notices": feedback.notices,
        "errors": feedback.errors,
    }


@login_required
@require_page
def team_list(request: HtmxHttpRequest) -> HttpResponse:
    context = _team_list_context(get_caller(request))
    return render_page(request, page=TEAM_LIST_PAGE, partial=TEAM_LIST_CONTENT, context=context)


@login_required
@require_post
def team_create(request: HtmxHttpRequest) -> HttpResponse:
    caller = get_caller(request)
    form = TeamForm(request.POST)

    def created(team: Team) -> HttpResponse:
        return _section_done(
            request,
            f"Created team {team.name}; you are its admin.",
            url=reverse("settings:teams"),
            section=TEAMS,
            # The new team can now hold applications: refresh that section's team choices too.
            context=lambda feedback: {
                **_team_list_context(_refreshed_caller(request), feedback=feedback),
                "refresh_applications": True,
            },
        )

    return _section_post(
        request,
        lambda: services.team_create(caller=caller, **form.cleaned_data),
        section=TEAMS,
        success=created,
        context=partial(_team_list_context, caller),
        form=form,
        form_name="team_form",
    )


@login_required
@require_post
def application_create(request: HtmxHttpRequest) -> HttpResponse:
    caller = get_caller(request)
    form = ApplicationCreateForm(request.POST)

    def create() -> Application:
        team = selectors.team_get(caller=caller, team_id=form.cleaned_data["team"])
        return services.application_create(
            caller=caller, team=team, name=form.cleaned_data["name"], description=form.cleaned_data["description"]
        )

    context = partial(_team_list_context, caller)
    return _section_post(
        request,
        create,
        section=APPLICATIONS,
        success=lambda application: _section_done(
            request,
            f"Created application {application.name} in {application.team.name}.",
            url=reverse("settings:teams"),
            section=APPLICATIONS,
            context=context,
        ),
        context=context,
        form=form,
        form_name="application_form",
        propagate=(NotFound,),  # another team's: 404
    )


# One team: /settings/teams/<id>/ ---------------------------------------------------

TEAM_PAGE = "accounts/team_detail.html"
TEAM_CONTENT = "accounts/partials/_team_detail_content.html"
TEAM_DETAILS_SECTION = "accounts/partials/_team_details.html"
MEMBERS_SECTION = "accounts/partials/_members.html"
TEAM_DETAILS = Section("details", page=TEAM_PAGE, partial=TEAM_DETAILS_SECTION)
MEMBERS = Section("members", page=TEAM_PAGE, partial=MEMBERS_SECTION)


@dataclass(frozen=True)
class MemberRow:
    membership: Membership
    form: MemberUpdateForm | None


def _team_url(team: Team) -> str:
    return reverse("settings:team", args=[team.id])


def _team_initial(team: Team) -> dict[str, Any]:
    return {"name": team.name, "description": team.description, "time_zone": team.time_zone}


def _team_detail_context(
    caller: Caller,
    team: Team,
    *,
    team_form: TeamForm | None = None,
    member_add_form: MemberAddForm | None = None,
    member_forms: dict[int, MemberUpdateForm] | None = None,
    user_form: UserCreateForm | None = None,
    new_user: NewUser | None = None,
    invitation_form: InvitationCreateForm | None = None,
    new_invitation: NewInvitation | None = None,
    feedback: Feedback | None = None,
) -> dict[str, Any]:
    can_change_members = caller.has_permission(roles.CHANGE_MEMBERSHIP, team_id=team.id)
    member_forms = member_forms or {}
    member_rows = [
        MemberRow(
            membership=membership,
            form=member_forms.get(membership.user_id)
            or MemberUpdateForm(
                initial={"role": membership.role, "clearance": membership.clearance}, user_id=membership.user_id
            )
            if can_change_members
            else None,
        )
        for membership in selectors.membership_list(caller=caller, team=team)
    ]
    role = caller.role_in(team.id) or ""
    feedback = feedback or Feedback()
    return {
        "team": team,
        "your_role": dict(Role.choices).get(role, role),
        "your_clearance": Clearance(caller.clearance_in(team.id)).label,
        "can_change_team": caller.has_permission(roles.CHANGE_TEAM, team_id=team.id),
        "team_form": team_form or TeamForm(initial=_team_initial(team)),
        "member_rows": member_rows,
        "can_change_members": can_change_members,
        "can_remove_members": caller.has_permission(roles.DELETE_MEMBERSHIP, team_id=team.id),
        "can_add_members": caller.has_permission(roles.ADD_MEMBERSHIP, team_id=team.id),
        "member_add_form": member_add_form or MemberAddForm(),
        **_account_creation_context(
            caller,
            team,
            user_form=user_form,
            new_user=new_user,
            invitation_form=invitation_form,
            new_invitation=new_invitation,
        ),
        "applications": selectors.application_list(caller=caller, team_id=team.id),
        "can_add_applications": caller.has_permission(roles.ADD_APPLICATION, team_id=team.id),
        "notices": feedback.notices,
        "errors": feedback.errors,
    }


@login_required
@require_page
def team_detail(request: HtmxHttpRequest, team_id: int) -> HttpResponse:
    caller = get_caller(request)
    team = selectors.team_get(caller=caller, team_id=team_id)
    return render_page(request, page=TEAM_PAGE, partial=TEAM_CONTENT, context=_team_detail_context(caller, team))


@login_required
@require_post
def team_update(request: HtmxHttpRequest, team_id: int) -> HttpResponse:
    caller = get_caller(request)
    team = selectors.team_get(caller=caller, team_id=team_id)
    form = TeamForm(request.POST, initial=_team_initial(team))

    context = partial(_team_detail_context, caller, team)
    return _section_post(
        request,
        lambda: services.team_update(caller=caller, team=team, **form.cleaned_data),
        section=TEAM_DETAILS,
        success=lambda team: _section_done(
            request, "Saved the team.", url=_team_url(team), section=TEAM_DETAILS, context=context
        ),
        context=context,
        form=form,
        form_name="team_form",
    )


@login_required
@require_post
def member_add(request: HtmxHttpRequest, team_id: int) -> HttpResponse:
    caller = get_caller(request)
    team = selectors.team_get(caller=caller, team_id=team_id)
    form = MemberAddForm(request.POST)

    context = partial(_team_detail_context, caller, team)
    return _section_post(
        request,
        lambda: services.membership_add(caller=caller, team=team, **form.cleaned_data),
        section=MEMBERS,
        success=lambda membership: _section_done(
            request,
            f"Added {membership.user.get_username()} as {membership.get_role_display()}.",
            url=_team_url(team),
            section=MEMBERS,
            context=context,
        ),
        context=context,
        form=form,
        form_name="member_add_form",
    )


@login_required
@require_post
def member_update(request: HtmxHttpRequest, team_id: int, user_id: int) -> HttpResponse:
    caller = get_caller(request)
    team = selectors.team_get(caller=caller, team_id=team_id)
    membership = selectors.membership_get(caller=caller, team=team, user_id=user_id)
    username = membership.user.get_username()
    form = MemberUpdateForm(request.POST, user_id=membership.user_id)

    def changed(membership: Membership) -> HttpResponse:
        role, clearance = membership.get_role_display(), membership.get_clearance_display()
        return _section_done(
            request,
            f"{username} is now {role} with {clearance} clearance.",
            url=_team_url(team),
            section=MEMBERS,
            # The user may have changed their own role: render with their current rights.
            context=partial(_team_detail_context, _refreshed_caller(request), team),
        )

    return _section_post(
        request,
        lambda: services.membership_update(caller=caller, membership=membership, **form.cleaned_data),
        section=MEMBERS,
        success=changed,
        context=partial(_team_detail_context, caller, team, member_forms={membership.user_id: form}),
        form=form,
        refusal_prefix=f"Could not change {username}: ",
        errors_on_fields=False,
    )


@login_required
@require_post
def member_remove(request: HtmxHttpRequest, team_id: int, user_id: int) -> HttpResponse:
    caller = get_caller(request)
    team = selectors.team_get(caller=caller, team_id=team_id)
    membership = selectors.membership_get(caller=caller, team=team, user_id=user_id)
    username = membership.user.get_username()
    context = partial(_team_detail_context, caller, team)

    def removed(_: None) -> HttpResponse:
        message = f"Removed {username} from {team.name}."
        if membership.user_id == request.user.pk:
            # The user left the team: its page is no longer theirs to see.
            messages.success(request, message)
            return htmx_redirect(reverse("settings:teams")) if request.htmx else redirect("settings:teams")
        return _section_done(request, message, url=_team_url(team), section=MEMBERS, context=context)

    return _section_post(
        request,
        lambda: services.membership_remove(caller=caller, membership=membership),
        section=MEMBERS,
        success=removed,
        context=context,
        refusal_prefix=f"Could not remove {username}: ",
    )


# Accounts for new people: a user created by an admin, or an invitation link -------

INVITATIONS_SECTION = "accounts/partials/_invitations.html"
USERS = Section("users", page=TEAM_PAGE, partial=MEMBERS_SECTION)
INVITATIONS = Section("invitations", page=TEAM_PAGE, partial=INVITATIONS_SECTION)
INVITATION_PAGE = "accounts/invitation_accept.html"
INVITATION_UNUSABLE_PAGE = "accounts/invitation_unusable.html"


@dataclass(frozen=True)
class NewUser:
    """An account just created, with its generated password: rendered in that one response only."""

    username: str
    password: str


@dataclass(frozen=True)
class NewInvitation:
    """An invitation just created, with its link: rendered in that one response only."""

    invitation: Invitation
    url: str


def _account_creation_context(
    caller: Caller,
    team: Team,
    *,
    user_form: UserCreateForm | None,
    new_user: NewUser | None,
    invitation_form: InvitationCreateForm | None,
    new_invitation: NewInvitation | None,
) -> dict[str, Any]:
    if not caller.has_permission(roles.CREATE_USER, team_id=team.id):
        return {"can_create_users": False}
    role, clearance = caller.role_in(team.id) or "", caller.clearance_in(team.id)
    user_form = user_form or UserCreateForm()
    user_form.offer_grantable(role=role, clearance=clearance)
    invitation_form = invitation_form or InvitationCreateForm()
    invitation_form.offer_grantable(role=role, clearance=clearance)
    return {
        "can_create_users": True,
        "user_form": user_form,
        "new_user": new_user,
        "invitation_form": invitation_form,
        "new_invitation": new_invitation,
        "invitations": list(selectors.invitation_list(caller=caller, team=team)),
    }


def _shown_once(response: HttpResponse) -> HttpResponse:
    # The password or link exists only in this response: no cache, no history copy.
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_post
def user_create(request: HtmxHttpRequest, team_id: int) -> HttpResponse:
    caller = get_caller(request)
    team = selectors.team_get(caller=caller, team_id=team_id)
    form = UserCreateForm(request.POST)

    def created(created: tuple[Any, str | None]) -> HttpResponse:
        user, password = created
        # No redirect, even for a plain post: the password exists only in this response.
        new_user = NewUser(username=user.get_username(), password=password or "")
        context = _team_detail_context(caller, team, new_user=new_user)
        return _shown_once(render_page(request, page=TEAM_PAGE, partial=MEMBERS_SECTION, context=context, status=201))

    return _section_post(
        request,
        lambda: services.user_create(caller=caller, team=team, **form.cleaned_data),
        section=USERS,
        success=created,
        context=partial(_team_detail_context, caller, team),
        form=form,
        form_name="user_form",
    )


@login_required
@require_post
def invitation_create(request: HtmxHttpRequest, team_id: int) -> HttpResponse:
    caller = get_caller(request)
    team = selectors.team_get(caller=caller, team_id=team_id)
    form = InvitationCreateForm(request.POST)

    def created(created: tuple[Invitation, str]) -> HttpResponse:
        invitation, token = created
        url = request.build_absolute_uri(reverse("invitation", args=[token]))
        context = _team_detail_context(caller, team, new_invitation=NewInvitation(invitation=invitation, url=url))
        return _shown_once(
            render_page(request, page=TEAM_PAGE, partial=INVITATIONS_SECTION, context=context, status=201)
        )

    return _section_post(
        request,
        lambda: invitations.invitation_create(caller=caller, team=team, **form.cleaned_data),
        section=INVITATIONS,
        success=created,
        context=partial(_team_detail_context, caller, team),
        form=form,
        form_name="invitation_form",
    )


@login_required
@require_post
def invitation_revoke(request: HtmxHttpRequest, team_id: int, invitation_id: int) -> HttpResponse:
    caller = get_caller(request)
    team = selectors.team_get(caller=caller, team_id=team_id)
    invitation = selectors.invitation_get(caller=caller, team=team, invitation_id=invitation_id)
    context = partial(_team_detail_context, caller, team)
    return _section_post(
        request,
        lambda: invitations.invitation_revoke(caller=caller, invitation=invitation),
        section=INVITATIONS,
        success=lambda _: _section_done(
            request,
            f"Revoked the invitation of {invitation.email}; its link no longer works.",
            url=_team_url(team),
            section=INVITATIONS,
            context=context,
        ),
        context=context,
        refusal_prefix="Could not revoke the invitation: ",
    )


def _invitation_unusable(request: HttpRequest, error: ApplicationError) -> HttpResponse:
    # A token that matches nothing says only that (404); a used, revoked or expired one says
    # which (410) but never the team or the address.
    response = render(request, INVITATION_UNUSABLE_PAGE, {"message": error.message}, status=error.status_code)
    return _shown_once(response)


@require_http_methods(["GET", "HEAD", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The invitee's page, reachable without logging in: pick a username and password, join."""
    try:
        invitation = invitations.invitation_for_token(token)
    except (NotFound, invitations.InvitationUnusable) as error:
        return _invitation_unusable(request, error)
    form = InvitationAcceptForm(request.POST or None, email=invitation.email)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                user = invitations.invitation_accept(
                    token=token, username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
                )
            except (NotFound, invitations.InvitationUnusable) as error:
                return _invitation_unusable(request, error)
            except ApplicationError as error:
                form.add_error("password1" if error.param == "password" else "username", error.message)
                status = error.status_code
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(
                    request,
                    f"Welcome, {user.get_username()}: you are now {invitation.get_role_display()} "
                    f"of {invitation.team.name}.",
                )
                return redirect("settings:team", invitation.team_id)
    context = {"invitation": invitation, "form": form}
    return _shown_once(render(request, INVITATION_PAGE, context, status=status))


# One application: /settings/applications/<id>/ ------------------------------------

APPLICATION_PAGE = "accounts/application_detail.html"
APPLICATION_CONTENT = "accounts/partials/_application_detail_content.html"
APPLICATION_DETAILS_SECTION = "accounts/partials/_application_details.html"
API_KEYS_SECTION = "accounts/partials/_api_keys.html"
APPLICATION_DETAILS = Section("details", page=APPLICATION_PAGE, partial=APPLICATION_DETAILS_SECTION)
KEYS = Section("keys", page=APPLICATION_PAGE, partial=API_KEYS_SECTION)


@dataclass(frozen=True)
class NewKey:
    """A key just created, with its secret: rendered in that one response, never stored."""

    api_key: ApiKey
    secret: str


def _application_url(application: Application) -> str:
    return reverse("settings:application", args=[application.id])


def _application_initial(application: Application) -> dict[str, Any]:
    return {"name": application.name, "description": application.description}


def _application_detail_context(
    caller: Caller,
    application: Application,
    *,
    application_form: ApplicationUpdateForm | None = None,
    key_form: ApiKeyCreateForm | None = None,
    new_key: NewKey | None = None,
    feedback: Feedback | None = None,
) -> dict[str, Any]:
    team_id = application.team_id
    can_view_keys = caller.has_permission(roles.VIEW_API_KEY, team_id=team_id, obj=application)
    feedback = feedback or Feedback()
    return {
        "application": application,
        "can_change_application": caller.has_permission(roles.CHANGE_APPLICATION, team_id=team_id, obj=application),
        # Team roles only (no per-object grant): asking django-guardian would cost queries per page.
        "can_archive_application": caller.has_permission(roles.ARCHIVE_APPLICATION, team_id=team_id),
        "can_delete_application": caller.has_permission(roles.DELETE_APPLICATION, team_id=team_id),
        "application_form": application_form or ApplicationUpdateForm(initial=_application_initial(application)),
        "can_view_keys": can_view_keys,
        "api_keys": selectors.api_key_list(caller=caller, application=application) if can_view_keys else [],
        "can_add_keys": caller.has_permission(roles.ADD_API_KEY, team_id=team_id, obj=application),
        "can_revoke_keys": caller.has_permission(roles.CHANGE_API_KEY, team_id=team_id, obj=application),
        "key_form": key_form or ApiKeyCreateForm(),
        "new_key": new_key,
        "notices": feedback.notices,
        "errors": feedback.errors,
    }


@login_required
@require_page
def application_detail(request: HtmxHttpRequest, application_id: int) -> HttpResponse:
    caller = get_caller(request)
    application = selectors.application_get(caller=caller, application_id=application_id)
    context = _application_detail_context(caller, application)
    return render_page(request, page=APPLICATION_PAGE, partial=APPLICATION_CONTENT, context=context)


@login_required
@require_post
def application_update(request: HtmxHttpRequest, application_id: int) -> HttpResponse:
    caller = get_caller(request)
    application = selectors.application_get(caller=caller, application_id=application_id)
    form = ApplicationUpdateForm(request.POST, initial=_application_initial(application))

    def saved(application: Application) -> HttpResponse:
        return _section_done(
            request,
            "Saved the application.",
            url=_application_url(application),
            section=APPLICATION_DETAILS,
            context=partial(_application_detail_context, caller, application),
        )

    def refused(refusal: Refusal) -> dict[str, Any]:
        if refusal.error is not None:
            # A refused rename must not show the refused name as the application's.
            application.refresh_from_db()
        feedback = Feedback.refused(APPLICATION_DETAILS.name, refusal)
        return _application_detail_context(caller, application, application_form=form, feedback=feedback)

    return page_action(
        request,
        lambda: services.application_update(caller=caller, application=application, **form.cleaned_data),
        form=form,
        success=saved,
        context=refused,
        page=APPLICATION_DETAILS.page,
        partial=APPLICATION_DETAILS.partial,
    )


@login_required
@require_post
def key_create(request: HtmxHttpRequest, application_id: int) -> HttpResponse:
    caller = get_caller(request)
    application = selectors.application_get(caller=caller, application_id=application_id)
    form = ApiKeyCreateForm(request.POST)

    def created(created: tuple[ApiKey, str]) -> HttpResponse:
        api_key, secret = created
        # No redirect, even for a plain post: the secret exists only in this response.
        context = _application_detail_context(caller, application, new_key=NewKey(api_key=api_key, secret=secret))
        response = render_page(request, page=APPLICATION_PAGE, partial=API_KEYS_SECTION, context=context, status=201)
        add_never_cache_headers(response)
        return response

    return _section_post(
        request,
        lambda: services.api_key_create(caller=caller, application=application, **form.cleaned_data),
        section=KEYS,
        success=created,
        context=partial(_application_detail_context, caller, application),
        form=form,
        form_name="key_form",
    )


@login_required
@require_post
def key_revoke(request: HtmxHttpRequest, application_id: int, key_id: int) -> HttpResponse:
    caller = get_caller(request)
    application = selectors.application_get(caller=caller, application_id=application_id)

    def revoke() -> ApiKey:
        api_key = selectors.api_key_get(caller=caller, application=application, key_id=key_id)
        services.api_key_revoke(caller=caller, api_key=api_key)
        return api_key

    context = partial(_application_detail_context, caller, application)
    return _section_post(
        request,
        revoke,
        section=KEYS,
        success=lambda api_key: _section_done(
            request,
            f"Revoked key {api_key.name} (cp_{api_key.prefix}); requests with it now fail.",
            url=_application_url(application),
            section=KEYS,
            context=context,
        ),
        context=context,
        refusal_prefix="Could not revoke the key: ",
        propagate=(NotFound,),
    )


def _application_lifecycle(request: HtmxHttpRequest, application_id: int, action: str) -> HttpResponse:
    """Archive, restore or delete: a redirect with a notice, or the details section with the refusal."""
    caller = get_caller(request)
    application = selectors.application_get(caller=caller, application_id=application_id)
    name = application.name

    def act() -> str:
        if action == "archive":
            services.application_archive(caller=caller, application=application)
            return f"Archived {name}: its keys no longer work. Restore it to use them again."
        if action == "restore":
            services.application_restore(caller=caller, application=application)
            return f"Restored {name}: its keys that are not revoked or expired work again."
        services.application_delete(caller=caller, application=application)
        return f"Deleted {name}."

    def done(message: str) -> HttpResponse:
        messages.success(request, message)
        url = (
            reverse("settings:teams") if action == "delete" else reverse("settings:application", args=[application_id])
        )
        return htmx_redirect(url) if request.htmx else redirect(url)

    def refused(refusal: Refusal) -> dict[str, Any]:
        application.refresh_from_db()
        feedback = Feedback.refused(APPLICATION_DETAILS.name, refusal, prefix=f"Could not {action} {name}: ")
        return _application_detail_context(caller, application, feedback=feedback)

    return page_action(
        request, act, success=done, context=refused, page=APPLICATION_DETAILS.page, partial=APPLICATION_DETAILS.partial
    )


@login_required
@require_post
def application_archive(request: HtmxHttpRequest, application_id: int) -> HttpResponse:
    return _application_lifecycle(request, application_id, "archive")


@login_required
@require_post
def application_restore(request: HtmxHttpRequest, application_id: int) -> HttpResponse:
    return _application_lifecycle(request, application_id, "restore")


@login_required
@require_post
def application_delete(request: HtmxHttpRequest, application_id: int) -> HttpResponse:
    return _application_lifecycle(request, application_id, "delete")


class LoginView(auth_views.LoginView):
    """The login page, throttled per account and per address (accounts.login_throttle): a
    locked-out login is a 429 saying when to try again."""

    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        if form.lockout is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.lockout.retry_after_seconds)
        return response
