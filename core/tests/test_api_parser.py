"""The REST API's JSON parser bounds nesting for every endpoint (a deep body was a 500)."""

from __future__ import annotations

import pytest

from accounts.models import Team


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [65, 5_000])
def test_a_body_nested_too_deeply_is_a_400_on_any_endpoint_and_changes_nothing(team_a, client_for, levels):
    admin = client_for(team_a.members["admin"])
    body = '{"description": ' + _nested(levels) + "}"

    response = admin.patch(f"/api/v1/teams/{team_a.team.id}/", body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert "at most 64 levels" in response.json()["error"]["message"]
    assert Team.objects.get(pk=team_a.team.pk).description == team_a.team.description


def test_a_body_nested_within_the_bound_reaches_the_view(team_a, client_for):
    admin = client_for(team_a.members["admin"])
    body = '{"description": ' + _nested(60) + "}"

    response = admin.patch(f"/api/v1/teams/{team_a.team.id}/", body, content_type="application/json")

    # the view's own validation answers (a description is text), not the parser
    assert response.status_code == 400, response.content
    assert "levels" not in response.json()["error"]["message"]
