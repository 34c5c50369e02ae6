"""Dates and times from users: one parser (core.dates), any ISO 8601 UTC offset, the
supported years, and never a 500 on any entry point that takes one."""

from __future__ import annotations

import datetime

import pytest
from django import forms
from rest_framework import serializers

from core.dates import MomentField, MomentFormField, parse_moment
from core.errors import ValidationFailed

UTC = datetime.UTC


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-05-12T05:28:01+16:00", datetime.datetime(2025, 5, 11, 13, 28, 1, tzinfo=UTC)),
        ("2025-05-12T05:28:01-23:59", datetime.datetime(2025, 5, 13, 5, 27, 1, tzinfo=UTC)),
        ("2025-05-12T05:28:01+05:30", datetime.datetime(2025, 5, 11, 23, 58, 1, tzinfo=UTC)),
        ("2025-05-12T05:28:01Z", datetime.datetime(2025, 5, 12, 5, 28, 1, tzinfo=UTC)),
        ("2025-05-12T05:28:01", datetime.datetime(2025, 5, 12, 5, 28, 1, tzinfo=UTC)),
        ("2025-05-12", datetime.datetime(2025, 5, 12, tzinfo=UTC)),
        ("1970-01-01T00:00:00+14:00", datetime.datetime(1969, 12, 31, 10, 0, tzinfo=UTC)),
        ("9000-12-31T23:59:59-14:00", datetime.datetime(9001, 1, 1, 13, 59, 59, tzinfo=UTC)),
    ],
)
def test_a_moment_with_any_offset_is_the_same_instant_in_utc(raw, expected):
    value = parse_moment("to", raw)

    assert value == expected
    assert value.utcoffset() == datetime.timedelta(0)


@pytest.mark.parametrize(
    "raw", ["2025-05-12T05:28:01+24:00", "2025-05-12T05:28:01+99:00", "0001-01-01", "9999-12-31T23:59:59Z", "soon"]
)
def test_an_impossible_offset_or_a_year_out_of_range_is_refused_naming_the_parameter(raw):
    with pytest.raises(ValidationFailed) as refusal:
        parse_moment("since", raw)

    assert refusal.value.param == "since"
    assert refusal.value.message.startswith(f"since: '{raw}' ")


def test_the_serializer_field_converts_to_utc_and_refuses_years_out_of_range():
    field = MomentField()

    assert field.run_validation("2025-05-12T05:28:01+16:00") == datetime.datetime(2025, 5, 11, 13, 28, 1, tzinfo=UTC)
    for raw in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", 20250512, "2025-13-01"):
        with pytest.raises(serializers.ValidationError):
            field.run_validation(raw)


def test_the_form_field_converts_to_utc_and_refuses_years_out_of_range():
    field = MomentFormField()

    assert field.clean("2025-05-12T05:28:01+16:00") == datetime.datetime(2025, 5, 11, 13, 28, 1, tzinfo=UTC)
    assert field.clean("2025-05-12T05:28") == datetime.datetime(2025, 5, 12, 5, 28, tzinfo=UTC)
    with pytest.raises(forms.ValidationError):
        field.clean("9999-12-31T23:59")


# Through every entry point -------------------------------------------------------------------

FAR_EAST = "2025-05-12T05:28:01%2B16:00"  # 2025-05-11T13:28:01Z


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        f"/api/v1/audit/events/?since={FAR_EAST}",
        f"/api/v1/audit/events/?until={FAR_EAST}",
        f"/api/v1/audit/export/?since={FAR_EAST}",
        "/api/v1/audit/export/?until=2025-05-12T05:28:01-23:59",
    ],
)
def test_audit_api_takes_a_far_offset(team_a, client_for, url):
    response = client_for(team_a.members["compliance_officer"]).get(url)

    assert response.status_code == 200, getattr(response, "content", b"")[:500]
    if response.streaming:
        b"".join(response.streaming_content)  # the whole export streams without an error


@pytest.mark.django_db
@pytest.mark.parametrize("query", [f"since={FAR_EAST}", f"until={FAR_EAST}"])
def test_audit_page_takes_a_far_offset(team_a, page_client_for, query):
    response = page_client_for(team_a.members["compliance_officer"]).get(f"/compliance/?{query}")

    assert response.status_code == 200
