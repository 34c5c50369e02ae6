"""bulk_insert stores rows exactly as bulk_create does (COPY on PostgreSQL)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from compliance.models import AuditEvent
from core.bulk import bulk_insert
from core.ids import uuid7
from core.testing import requires_postgresql
from observability.models import Call

pytestmark = pytest.mark.django_db


NOW = timezone.now()


def a_call(team_a, **values):
    return Call(
        id=uuid7(),
        created_at=NOW,
        team_id=team_a.team.id,
        application_id=team_a.application.id,
        request_model="m",
        request_messages=[{"role": "user", "content": "tab\there, newline\n, quote ' \" and back\\slash, é"}],
        metadata={"nested": {"list": [1, 2.5, None, True]}, "empty": ""},
        response_text="line one\nline two\r\n\\N",  # \N is COPY's NULL marker in text format
        cost_usd="0.00012345",
        latency_ms=12.5,
        **values,
    )


def stored(model, pk):
    values = model_to_dict(model.objects.get(pk=pk))
    values.pop("id", None)
    return values


@requires_postgresql("COPY is its PostgreSQL path; elsewhere it is bulk_create")
def test_copied_calls_read_back_exactly_as_bulk_created_ones(team_a):
    copied, created = a_call(team_a, end_user="u1"), a_call(team_a, end_user="u1")

    bulk_insert(Call, [copied])
    Call.objects.bulk_create([created])

    assert stored(Call, copied.id) == stored(Call, created.id)
    assert Call.objects.get(pk=copied.id).response_text == "line one\nline two\r\n\\N"


@requires_postgresql("COPY is its PostgreSQL path; elsewhere it is bulk_create")
def test_copied_rows_with_automatic_keys_get_them_from_the_database(team_a):
    events = [
        AuditEvent(created_at=timezone.now(), actor_type="system", action="test.bulk", metadata={"n": n})
        for n in range(3)
    ]

    bulk_insert(AuditEvent, events)

    rows = list(AuditEvent.objects.filter(action="test.bulk").order_by("id").values_list("metadata", flat=True))
    assert rows == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_a_duplicate_key_is_an_integrity_error_and_stores_nothing(team_a):
    first = a_call(team_a)
    bulk_insert(Call, [first])
    again, other = a_call(team_a), a_call(team_a)
    again.id = first.id

    with pytest.raises(IntegrityError), transaction.atomic():
        bulk_insert(Call, [other, again])

    assert list(Call.objects.values_list("id", flat=True)) == [first.id]
