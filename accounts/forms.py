"""Input validation for the settings pages. Forms only validate; accounts.services acts."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django import forms
from django.utils import timezone

from accounts.models import MEMBER_ROLES, Clearance, Role, Team, validate_time_zone
from accounts.names import validate_application_name


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
    expires_at = forms.DateTimeField(
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
