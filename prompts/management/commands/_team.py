"""The team a prompts command works on: --team as an id or a name, or the only team."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.management.base import CommandError

from accounts.selectors import team_if_only_one, team_of_id_or_name

if TYPE_CHECKING:
    from accounts.models import Team


def team_from_option(value: str | None) -> Team:
    if value:
        team = team_of_id_or_name(value=value)
        if team is None:
            raise CommandError(f"No team with id or name '{value}'.")
        return team
    only_team = team_if_only_one()
    if only_team is None:
        raise CommandError("Pass --team (an id or a name): there is not exactly one team.")
    return only_team
