"""The calls list and page take a date-time with any ISO 8601 offset as the same instant
(PostgreSQL refuses offsets beyond +-15:59 in a literal: it was a 500), and refuse years out of
range naming the parameter."""

from __future__ import annotations

import pytest

from core.testing import assert_openai_error

pytestmark = pytest.mark.django_db

FAR_EAST = "2025-05-12T05:28:01%2B16:00"  # 2025-05-11T13:28:01Z


@pytest.mark.parametrize("name", ["from", "to"])
def test_calls_list_filters_by_a_far_offset_as_the_same_instant(team_a, make_call, client_for, name):
    before = make_call(team_a, created_at="2025-05-11T13:00:00+00:00")
    after = make_call(team_a, created_at="2025-05-11T14:00:00+00:00")

    response = client_for(team_a.members["viewer"]).get(f"/api/v1/calls/?{name}={FAR_EAST}")

    assert response.status_code == 200, response.content
    expected = after if name == "from" else before
    assert [row["id"] for row in response.json()["results"]] == [str(expected.id)]


def test_calls_page_takes_a_far_offset(team_a, make_call, page_client_for):
    make_call(team_a, created_at="2025-05-11T13:00:00+00:00")

    response = page_client_for(team_a.members["viewer"]).get(f"/calls/?to={FAR_EAST}")

    assert response.status_code == 200


@pytest.mark.parametrize("query", ["to=9999-12-31T23:59:59Z", "from=0001-01-01"])
def test_calls_list_refuses_a_year_out_of_range_naming_it(team_a, client_for, query):
    response = client_for(team_a.members["viewer"]).get(f"/api/v1/calls/?{query}")

    assert_openai_error(response, 400, param=query.split("=")[0])
