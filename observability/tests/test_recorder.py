"""The call recorder: batched, idempotent, and nothing acknowledged is lost to a crash."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from pathlib import Path

import orjson
import pytest
from django.core.management import call_command

from costs.models import BudgetPeriod, usd_to_units
from costs.tests.factories import reservation_for
from observability.models import Call
from observability.recorder import CallRecorder
from observability.tests.factories import CallRecordFactory

pytestmark = pytest.mark.django_db(transaction=True)


def record(team_a, **values):
    return CallRecordFactory.build(world=team_a, **{"request_model": "m", "cost_usd": "0.001", **values})


def test_submitted_records_are_stored_in_batches_and_the_spool_is_emptied(team_a, tmp_path):
    spool = tmp_path / "spool"
    writer = CallRecorder(spool, batch_size=50, interval=0.01)
    records = [record(team_a) for _ in range(120)]

    for item in records:
        writer.submit(item)
    assert writer.flush(timeout=20)

    assert Call.objects.count() == 120
    assert writer.stored_total == 120
    assert list(spool.glob("calls-*.jsonl")) == []


def test_a_crashed_process_spool_is_replayed_once(team_a, tmp_path, settings):
    spool = tmp_path / "spool"
    spool.mkdir()
    settings.GATEWAY_SPOOL_DIR = str(spool)
    lost = [record(team_a, end_user=f"user-{index}") for index in range(3)]
    # A spool segment nobody holds a lock on: its process died after acknowledging these.
    (spool / "calls-99999-deadbeef0000.jsonl").write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in lost))

    recovered = CallRecorder(spool).recover_orphans()
    again = CallRecorder(spool).recover_orphans()

    assert recovered == 3
    assert again == 0
    assert sorted(Call.objects.values_list("end_user", flat=True)) == ["user-0", "user-1", "user-2"]
    assert list(Path(spool).glob("*.jsonl")) == []


def test_a_replayed_record_that_was_already_stored_is_not_stored_twice(team_a, tmp_path, settings):
    spool = tmp_path / "spool"
    spool.mkdir()
    stored = record(team_a)
    writer = CallRecorder(spool, interval=0.01)
    writer.submit(stored)
    assert writer.flush()
    (spool / "calls-99998-deadbeef0001.jsonl").write_bytes(orjson.dumps(stored) + b"\n")

    CallRecorder(spool).recover_orphans()

    assert Call.objects.count() == 1


def test_calls_recover_command_reports_what_it_stored(team_a, tmp_path, settings):
    spool = tmp_path / "spool"
    spool.mkdir()
    settings.GATEWAY_SPOOL_DIR = str(spool)
    (spool / "calls-99997-deadbeef0002.jsonl").write_bytes(orjson.dumps(record(team_a)) + b"\n")
    out = StringIO()

    call_command("calls_recover", stdout=out)

    assert out.getvalue() == "Recovered 1 spooled call records.\n"
    assert Call.objects.count() == 1


def test_a_spooled_budget_settlement_is_applied_with_its_record_and_only_once(team_a, tmp_path, settings):
    from costs.services import budget_create

    spool = tmp_path / "spool"
    spool.mkdir()
    budget, _ = budget_create(
        caller=None, team=team_a.team, name="cap", scope="team", period="total", amount_usd=Decimal("10")
    )
    reservation = reservation_for(team_a, "2", model="m")
    held = record(team_a, cost_usd="0.5", budget_settlement=reservation.settlement(Decimal("0.5")))
    # The gateway acknowledged the call, then its process died before the writer stored it.
    (spool / "calls-99996-deadbeef0003.jsonl").write_bytes(orjson.dumps(held) + b"\n")
    period = BudgetPeriod.objects.get(budget=budget)
    assert (period.spent_units, period.reserved_units) == (0, usd_to_units(Decimal("2")))

    CallRecorder(spool).recover_orphans()
    (spool / "calls-99995-deadbeef0004.jsonl").write_bytes(orjson.dumps(held) + b"\n")
    CallRecorder(spool).recover_orphans()  # replayed again: the call exists, nothing settles twice

    period.refresh_from_db()
    assert (period.spent_units, period.reserved_units) == (usd_to_units(Decimal("0.5")), 0)
    assert Call.objects.get().cost_usd == Decimal("0.5")


def test_a_batch_assumed_new_that_holds_a_stored_record_stores_the_rest_once(team_a):
    from observability.services import calls_store

    stored_before = record(team_a, end_user="before")
    calls_store(records=[stored_before])
    fresh = record(team_a, end_user="fresh")

    created = calls_store(records=[stored_before, fresh], assume_new=True)

    assert [str(call.id) for call in created] == [fresh["id"]]
    assert sorted(Call.objects.values_list("end_user", flat=True)) == ["before", "fresh"]


def test_flush_stores_everything_at_once_whatever_the_interval(team_a, tmp_path):
    writer = CallRecorder(tmp_path / "spool", interval=60)
    for index in range(5):
        writer.submit(record(team_a, end_user=f"user-{index}"))

    assert writer.flush(timeout=20)

    assert Call.objects.count() == 5
