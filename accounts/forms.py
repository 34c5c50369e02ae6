"""Input validation for the settings pages. Forms only validate; accounts.services acts."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts import roles
from accounts.invitations import DEFAULT_EXPIRY_DAYS, MAX_EXPIRY_DAYS
from accounts.models import MEMBER_ROLES, Role, Team, validate_time_zone
from accounts.names import validate_application_name
from core.classification import Clearance
from core.dates import MomentFormField


class SettingsForm(forms.Form):
    """Several forms share a page, so each kind gets its own id prefix to keep element ids unique."""

    id_prefix = "form"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)


def _clearance_field(help_text: str = "The most sensitive data classification it may see.") -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        choices=Clearance.choices, coerce=int, initial=Clearance.INTERNAL, help_text=help_text
    )


class TeamForm(SettingsForm):
    id_prefix = "team"

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    time_zone = forms.CharField(
        max_length=64,
        initial="UTC",
        validators=[validate_time_zone],
        help_text="An IANA time zone such as UTC or Europe/Paris.",
    )


class ApplicationCreateForm(SettingsForm):
    id_prefix = "application"

    # An id rather than a choice of teams: a team outside the caller's teams must be reported
    # as missing (404) by the selector, and a team where the caller lacks the right as refused
    # (403) by the service, not both as an invalid choice.
    team = forms.IntegerField(min_value=1, max_value=2**63 - 1, widget=forms.Select)
    name = forms.CharField(max_length=100, validators=[validate_application_name])
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def offer_teams(self, teams: Iterable[Team]) -> None:
        """The teams to pick from: those where the caller may add applications."""
        self.fields["team"].widget.choices = [(team.id, team.name) for team in teams]


class ApplicationUpdateForm(SettingsForm):
    id_prefix = "application"

    name = forms.CharField(max_length=100, validators=[validate_application_name])
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class MemberAddForm(SettingsForm):
    id_prefix = "member"

    username = forms.CharField(max_length=150, help_text="The account must exist; an operator creates accounts.")
    role = forms.ChoiceField(choices=MEMBER_ROLES, initial=Role.VIEWER)
    clearance = _clearance_field()


class MemberUpdateForm(SettingsForm):
    """One per row of the members table, so the id prefix names the member."""

    role = forms.ChoiceField(choices=MEMBER_ROLES)
    # Rendered as a bare select in a table row, where a help text would have nowhere to go.
    clearance = _clearance_field(help_text="")

    def __init__(self, *args: Any, user_id: int, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"member_{user_id}_%s")
        super().__init__(*args, **kwargs)


class ApiKeyCreateForm(SettingsForm):
    id_prefix = "key"

    name = forms.CharField(max_length=100, help_text="Say where the key is used, e.g. 'production backend'.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.APPLICATION)
    clearance = _clearance_field()
    expires_at = MomentFormField(
        required=False,
        label="Expires at (UTC)",
        help_text="Leave empty for a key that does not expire.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def clean_expires_at(self) -> datetime.datetime | None:
        expires_at: datetime.datetime | None = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("Pick an expiry in the future, or leave it empty.")
        return expires_at


def _offer_grantable(form: forms.Form, *, role: str, clearance: int) -> None:
    """Offer only the roles and clearances a caller with `role` and `clearance` may hand out.

    The fields still accept every value, so that a forged higher one reaches the service and is
    refused there (403, on the denied-access log) rather than passing as a mere invalid choice.
    """
    form.fields["role"].widget.choices = [choice for choice in MEMBER_ROLES if roles.role_can_grant(role, choice[0])]
    form.fields["clearance"].widget.choices = [choice for choice in Clearance.choices if choice[0] <= clearance]


class UserCreateForm(SettingsForm):
    id_prefix = "user"

    username = forms.CharField(max_length=150, help_text="Letters, digits and @ . + - _ only.")
    email = forms.EmailField()
    role = forms.ChoiceField(choices=MEMBER_ROLES, initial=Role.VIEWER)
    clearance = _clearance_field()

    def offer_grantable(self, *, role: str, clearance: int) -> None:
        _offer_grantable(self, role=role, clearance=clearance)


class InvitationCreateForm(SettingsForm):
    id_prefix = "invitation"

    email = forms.EmailField(help_text="Who the link is for; their account gets this address.")
    role = forms.ChoiceField(choices=MEMBER_ROLES, initial=Role.VIEWER)
    clearance = _clearance_field()
    expires_in_days = forms.IntegerField(
        label="Expires in (days)",
        min_value=1,
        max_value=MAX_EXPIRY_DAYS,
        initial=DEFAULT_EXPIRY_DAYS,
        help_text=f"The link works once, for 1 to {MAX_EXPIRY_DAYS} days.",
    )

    def offer_grantable(self, *, role: str, clearance: int) -> None:
        _offer_grantable(self, role=role, clearance=clearance)


class InvitationAcceptForm(forms.Form):
    """The invitee's account: a username and a password checked by Django's password validators."""

    username = forms.CharField(max_length=150, help_text="Letters, digits and @ . + - _ only.")
    password1 = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="Password again", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean_username(self) -> str:
        username: str = self.cleaned_data["username"].strip()
        try:
            get_user_model().username_validator(username)
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None
        return username

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        password, again = cleaned.get("password1"), cleaned.get("password2")
        if password and again and password != again:
            self.add_error("password2", "The two passwords differ; type the same password twice.")
        elif password:
            # The similarity validator compares the password with the account it is for.
            user = get_user_model()(username=cleaned.get("username", ""), email=self.email)
            try:
                validate_password(password, user=user)
            except ValidationError as error:
                self.add_error("password1", error)
        return cleaned
