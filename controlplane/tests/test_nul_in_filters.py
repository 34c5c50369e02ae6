"""A NUL character in a text filter is a 400 naming the parameter (found by the schema fuzzing:
PostgreSQL text cannot hold NUL, so the query failed and the list answered 500)."""

from __future__ import annotations

import pytest

from core.testing import assert_openai_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "url", "param"),
    [
        ("viewer", "/api/v1/calls/?model=a%00b", "model"),
        ("viewer", "/api/v1/calls/?end_user=%00", "end_user"),
        ("viewer", "/api/v1/calls/?metadata.env=%00", "metadata.env"),
        ("compliance_officer", "/api/v1/audit/events/?actor=%00", "actor"),
        ("compliance_officer", "/api/v1/audit/events/?action=%00", "action"),
        ("viewer", "/api/v1/prompts/?search=%00", "search"),
        ("viewer", "/api/v1/prompts/?tag=%00", "tag"),
        ("viewer", "/api/v1/prompts/?label=%00", "label"),
    ],
)
def test_api_lists_refuse_a_nul_in_a_filter_naming_it(team_a, client_for, role, url, param):
    response = client_for(team_a.members[role]).get(url)

    assert_openai_error(response, 400, param=param)


@pytest.mark.parametrize(
    ("role", "url"), [("viewer", "/calls/?model=%00"), ("compliance_officer", "/compliance/?action=%00")]
)
def test_pages_refuse_a_nul_in_a_filter(team_a, page_client_for, role, url):
    response = page_client_for(team_a.members[role]).get(url)

    assert response.status_code == 400
    assert "cannot contain a NUL character" in response.content.decode()
