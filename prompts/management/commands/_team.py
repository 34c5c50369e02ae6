"""The team a prompts command works on: --team as an id or a name, or the only team."""

from __future__ import annotations

from django.core.management.base import CommandError

from accounts.models import Team
from core.ids import parse_whole_number


def team_from_option(value: str | None) -> Team:
    if value:
        team_id = parse_whole_number(value)
        team = Team.objects.filter(pk=team_id).first() if team_id is not None else None
        team = team or Team.objects.filter(name=value).first()
        if team is None:
            raise CommandError(f"No team with id or name '{value}'.")
        return team
    teams = list(Team.objects.all()[:2])
    if len(teams) != 1:
        raise CommandError("Pass --team (an id or a name): there is not exactly one team.")
    return teams[0]
