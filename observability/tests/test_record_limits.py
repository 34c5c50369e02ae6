"""Values no column can hold never stop call recording: records are fitted to their columns,
and a record the database rejects anyway is dead-lettered while the others are stored."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.core.management import CommandError, call_command
from django.db import DataError, models, transaction
from django.utils import timezone
from prometheus_client import REGISTRY

from compliance.audit import Action
from compliance.models import AuditEvent
from core.bulk import bulk_insert
from costs.models import BudgetPeriod, usd_to_units
from costs.tests.factories import reservation_for
from gateway.services import routing_set
from gateway.tests.conftest import model_for, provider_for, stored_calls
from gateway.tests.fake_upstream import reply
from observability.deadletter import DeadLetters, calls_store_isolating
from observability.models import Call
from observability.recorder import CallRecorder
from observability.records import REPLACEMENT, decimal_limit, fit_record, fitters, integer_range
from observability.services import calls_store
from observability.tests.factories import CallRecordFactory

# Stored in the test's own transaction unless another thread (the writer, the live
# gateway) must see the rows.
pytestmark = pytest.mark.django_db

MESSAGES: list[Any] = [{"role": "user", "content": "Say hello"}]
INT32_MAX = 2**31 - 1


def record(world: Any, **values: Any) -> dict[str, Any]:
    return CallRecordFactory.build(world=world, **{"request_model": "m", "cost_usd": "0.001", **values})


def call_fields() -> list[models.Field[Any, Any]]:
    return [field for field in Call._meta.concrete_fields if not field.primary_key and not field.is_relation]


def dead_lettered_count(reason: str) -> float:
    value = REGISTRY.get_sample_value("controlplane_call_records_dead_lettered_total", {"reason": reason})
    return value or 0.0


def llm_call_events() -> list[str]:
    return sorted(AuditEvent.objects.filter(action=Action.LLM_CALL).values_list("target_id", flat=True))


# Fitting: one function, limits read from the model ---------------------------------------


def test_every_text_json_integer_and_decimal_column_of_a_call_is_fitted():
    kinds = (models.CharField, models.TextField, models.JSONField, models.IntegerField, models.DecimalField)
    expected = sorted(field.name for field in call_fields() if isinstance(field, kinds))

    assert sorted(fitters()) == expected


def test_a_record_with_every_value_out_of_its_column_is_stored_fitted(team_a):
    """Each column gets what it cannot hold; the stored row holds the fitted values exactly."""
    wild = record(team_a)
    for field in call_fields():
        if isinstance(field, models.CharField):
            wild[field.name] = "\x00" + "x" * (field.max_length or 0)
        elif isinstance(field, models.TextField):
            wild[field.name] = "a\x00b"
        elif isinstance(field, models.JSONField):
            wild[field.name] = {"key\x00": ["value\x00", float("nan"), 2**63]}
        elif isinstance(field, models.IntegerField):
            wild[field.name] = 2**63
        elif isinstance(field, models.DecimalField):
            wild[field.name] = "1e20"

    (stored,) = calls_store(records=[wild])

    call = Call.objects.get(id=stored.id)
    for field in call_fields():
        value = getattr(call, field.attname)
        if isinstance(field, models.CharField):
            assert value == REPLACEMENT + "x" * ((field.max_length or 1) - 1), field.name
        elif isinstance(field, models.TextField):
            assert value == f"a{REPLACEMENT}b", field.name
        elif isinstance(field, models.JSONField):
            assert value == {f"key{REPLACEMENT}": [f"value{REPLACEMENT}", None, 2**63]}, field.name
        elif isinstance(field, models.IntegerField):
            assert value == integer_range(field)[1], field.name
        elif isinstance(field, models.DecimalField):
            assert value == decimal_limit(field), field.name
    assert call.output_tokens == INT32_MAX
    assert call.cost_usd == Decimal("999999.99999999")
    assert llm_call_events() == [str(call.id)]


def test_fitting_clamps_negative_counts_and_leaves_fitting_values_alone(team_a):
    fine = record(team_a, request_model="gpt-4o", input_tokens=12, metadata={"tenant": "acme"})

    assert fit_record(fine) == {**fine, "cost_usd": "0.00100000"}
    assert fit_record(record(team_a, input_tokens=-5))["input_tokens"] == 0


def test_a_dead_lettered_settlement_is_fitted_to_the_cost_column(team_a):
    fitted = fit_record(record(team_a, budget_settlement={"team": 1, "items": [[7, 100]], "actual": "1e30"}))

    assert fitted["budget_settlement"] == {"team": 1, "items": [[7, 100]], "actual": "999999.99999999"}


def test_bulk_insert_refuses_what_postgresql_refuses_on_every_database(team_a):
    """On PostgreSQL the database refuses; on SQLite bulk_insert refuses the same rows itself."""
    too_long = Call(**{**_call_values(team_a), "request_model": "m" * 201})
    with_nul = Call(**{**_call_values(team_a), "response_text": "a\x00b"})
    nul_in_json = Call(**{**_call_values(team_a), "metadata": {"k": "\x00"}})
    overflowing = Call(**{**_call_values(team_a), "output_tokens": 2**31})

    for call in (too_long, with_nul, nul_in_json, overflowing):
        with pytest.raises(DataError), transaction.atomic():
            bulk_insert(Call, [call])

    assert Call.objects.count() == 0


def _call_values(world: Any) -> dict[str, Any]:
    return {"created_at": timezone.now(), "team_id": world.team.id, "application_id": world.application.id}


# Through the live gateway --------------------------------------------------------------


def test_a_300_character_model_name_is_recorded_cut_and_recording_goes_on(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))
    routing_set(caller=None, application=gateway_client.application, model="fake-model")

    first = gateway_client.sdk.chat.completions.create(model="m" * 300, messages=MESSAGES)
    second = gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES)

    calls = stored_calls(expected=2)
    assert [call.request_model for call in calls] == ["m" * 200, "fake-model"]
    assert [call.response_model for call in calls] == ["fake-model", "fake-model"]
    assert first.choices[0].message.content == second.choices[0].message.content
    assert llm_call_events() == sorted(str(call.id) for call in calls)


def test_nul_characters_in_messages_metadata_and_user_are_recorded_as_replacement_characters(
    gateway_client, fake_upstream
):
    model_for(provider_for(fake_upstream))

    gateway_client.sdk.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "before\x00after"}],
        user="end\x00user",
        metadata={"tag": "a\x00b"},
    )

    [call] = stored_calls(expected=1)
    assert call.request_messages == [{"role": "user", "content": f"before{REPLACEMENT}after"}]
    assert call.end_user == f"end{REPLACEMENT}user"
    assert call.metadata == {"tag": f"a{REPLACEMENT}b"}
    assert llm_call_events() == [str(call.id)]


def test_a_usage_echo_of_two_to_the_63_is_recorded_clamped(gateway_client, fake_upstream):
    model_for(provider_for(fake_upstream))
    fake_upstream.enqueue(reply("Hello", prompt_tokens=2**63, completion_tokens=2**63))

    gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=2**63)
    gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES)

    first, second = stored_calls(expected=2)
    assert (first.input_tokens, first.output_tokens) == (INT32_MAX, INT32_MAX)
    assert first.request_params == {"max_tokens": 2**63}
    assert second.output_tokens == len(["Hello", "from", "the", "fake", "upstream."])  # one token a word
    assert llm_call_events() == sorted([str(first.id), str(second.id)])


def test_a_priced_usage_echo_of_two_to_the_63_settles_the_budget_at_the_cost_columns_limit(
    gateway_client, fake_upstream, team_a
):
    from costs.services import budget_create, price_set

    model_for(provider_for(fake_upstream))
    price_set(
        caller=None,
        model="fake-model",
        input_per_million=Decimal("1000"),
        output_per_million=Decimal("2000"),
        effective_from=timezone.now() - timedelta(days=1),
    )
    budget_create(caller=None, team=team_a.team, name="cap", scope="team", period="total", amount_usd=Decimal("100"))
    fake_upstream.enqueue(reply("Hello", prompt_tokens=2**63, completion_tokens=2**63))

    gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=5)

    [call] = stored_calls(expected=1)
    period = BudgetPeriod.objects.get()
    assert call.cost_usd == Decimal("999999.99999999")
    assert (period.spent_units, period.reserved_units) == (usd_to_units(call.cost_usd), 0)


# Isolation: a rejected record is dead-lettered, the others stored ---------------------


def rejected(world: Any) -> dict[str, Any]:
    """A record no fitting can save: its id is not a UUID (a corrupted spool line)."""
    return record(world, id="not-a-uuid", end_user="poisoned")


def test_a_batch_with_one_rejected_record_stores_the_others_and_dead_letters_it(team_a, tmp_path):
    dead_letters = DeadLetters(tmp_path)
    good = [record(team_a, end_user=f"user-{index}") for index in range(7)]
    batch = [*good[:3], rejected(team_a), *good[3:]]
    counted_before = dead_lettered_count("ValueError")

    outcome = calls_store_isolating(records=batch, dead_letters=dead_letters, assume_new=True)

    assert (outcome.stored, outcome.rejected) == (7, 1)
    assert dead_lettered_count("ValueError") == counted_before + 1
    assert sorted(Call.objects.values_list("end_user", flat=True)) == [f"user-{index}" for index in range(7)]
    [letter] = dead_letters.entries()
    assert letter.call_id == "not-a-uuid"
    assert letter.record == batch[3]
    assert letter.error.startswith("ValueError: ")
    assert len(llm_call_events()) == 7


@pytest.mark.django_db(transaction=True)
def test_the_writer_dead_letters_a_rejected_record_and_keeps_recording(team_a, tmp_path):
    spool = tmp_path / "spool"
    writer = CallRecorder(spool, interval=0.01)

    writer.submit(rejected(team_a))
    writer.submit(record(team_a, end_user="first"))
    assert writer.flush(timeout=20)
    writer.submit(record(team_a, end_user="later"))
    assert writer.flush(timeout=20)

    assert sorted(Call.objects.values_list("end_user", flat=True)) == ["first", "later"]
    assert (writer.stored_total, writer.rejected_total) == (2, 1)
    assert list(spool.glob("calls-*.jsonl")) == []
    assert [letter.call_id for letter in writer.dead_letters.entries()] == ["not-a-uuid"]
    lines = (spool / "dead-letter" / "calls.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["kind"] for line in lines] == ["rejected"]


def test_the_budget_a_dead_lettered_record_settles_is_settled_once(team_a, tmp_path):
    from costs.services import budget_create

    budget, _ = budget_create(
        caller=None, team=team_a.team, name="cap", scope="team", period="total", amount_usd=Decimal("10")
    )
    reservation = reservation_for(team_a, "2", model="m")
    poisoned = {**rejected(team_a), "budget_settlement": reservation.settlement(Decimal("0.5"))}
    dead_letters = DeadLetters(tmp_path)

    calls_store_isolating(records=[poisoned], dead_letters=dead_letters)
    calls_store_isolating(records=[poisoned], dead_letters=dead_letters)  # rejected again (a recovery)

    period = BudgetPeriod.objects.get(budget=budget)
    assert (period.spent_units, period.reserved_units) == (usd_to_units(Decimal("0.5")), 0)
    [letter] = dead_letters.entries()
    assert (letter.times_rejected, letter.is_settled) == (2, True)
    assert "budget_settlement" not in letter.record_to_replay()


# Recovery and the operator's command ---------------------------------------------------


def test_calls_recover_dead_letters_a_poisoned_spool_line_and_stores_the_rest(team_a, tmp_path, settings):
    spool = tmp_path / "spool"
    spool.mkdir()
    settings.GATEWAY_SPOOL_DIR = str(spool)
    lines = [record(team_a, end_user="before"), rejected(team_a), record(team_a, end_user="after")]
    (spool / "calls-99990-deadbeef0010.jsonl").write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    out = StringIO()

    call_command("calls_recover", stdout=out)
    call_command("calls_recover", stdout=StringIO())

    assert out.getvalue() == (
        "Recovered 3 spooled call records.\n"
        f"1 of them were rejected by the database and dead-lettered in {spool}/dead-letter/calls.jsonl; "
        "see `manage.py calls_deadletter list`.\n"
    )
    assert sorted(Call.objects.values_list("end_user", flat=True)) == ["after", "before"]
    assert list(spool.glob("calls-*.jsonl")) == []
    assert [letter.call_id for letter in DeadLetters(spool).entries()] == ["not-a-uuid"]


def test_calls_deadletter_lists_shows_and_replays_idempotently(team_a, tmp_path, settings):
    settings.GATEWAY_SPOOL_DIR = str(tmp_path)
    dead_letters = DeadLetters(Path(tmp_path))
    # What an earlier version could not store (no fitting then): replayable now it fits.
    unfitted = record(team_a, end_user="replayed", request_model="m" * 300)
    dead_letters.add(record=unfitted, error=DataError("value too long for type character varying(200)"))
    dead_letters.add(record=rejected(team_a), error=ValueError("badly formed hexadecimal UUID string"))

    listing = StringIO()
    call_command("calls_deadletter", "list", stdout=listing)
    shown = StringIO()
    call_command("calls_deadletter", "show", unfitted["id"], stdout=shown)
    with pytest.raises(CommandError, match="1 still rejected:\nnot-a-uuid: ValueError"):
        call_command("calls_deadletter", "replay", stdout=StringIO())
    again = StringIO()
    with pytest.raises(CommandError):
        call_command("calls_deadletter", "replay", stdout=again)

    lines = listing.getvalue().splitlines()
    assert lines[0].startswith(f"{unfitted['id']}  ")
    assert lines[0].endswith("  pending  budget:-  DataError: value too long for type character varying(200)")
    assert lines[-1] == f"2 dead-lettered call records, 2 pending, in {tmp_path}/dead-letter/calls.jsonl."
    assert orjson.loads(shown.getvalue())["record"] == unfitted
    assert again.getvalue() == "Replayed 0 dead-lettered call records.\n"  # the stored one is not replayed twice
    [call] = Call.objects.all()
    assert (call.end_user, call.request_model) == ("replayed", "m" * 200)
    assert [letter.is_replayed for letter in dead_letters.entries()] == [True, False]
    call_command("calls_deadletter", "replay", unfitted["id"], stdout=StringIO())  # by id: stored once only
    assert Call.objects.count() == 1
    assert llm_call_events() == [str(call.id)]


def test_calls_deadletter_show_names_an_unknown_id(tmp_path, settings):
    settings.GATEWAY_SPOOL_DIR = str(tmp_path)

    with pytest.raises(CommandError, match="No dead-lettered call record has the id 'nope'"):
        call_command("calls_deadletter", "show", "nope")


def test_ingested_calls_with_nul_characters_in_messages_and_metadata_are_stored_fitted(team_a, key_client_for):
    client = key_client_for(team_a.application)
    call = {
        "id": "c-nul",
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "a\x00b"}],
        "params": {"stop\x00": "\x00"},
        "metadata": {"tag": "x\x00y"},
        "cost_usd": "0.5",
    }

    response = client.post("/api/v1/calls/", {"calls": [call]}, format="json")

    assert response.status_code == 201, response.content
    stored = Call.objects.get(client_call_id="c-nul")
    assert stored.request_messages == [{"role": "user", "content": f"a{REPLACEMENT}b"}]
    assert stored.request_params == {f"stop{REPLACEMENT}": REPLACEMENT}
    assert stored.metadata == {"tag": f"x{REPLACEMENT}y"}
    assert llm_call_events() == [str(stored.id)]


@pytest.mark.parametrize(("field", "levels"), [("metadata", 62), ("params", 500)])
def test_an_ingested_call_nested_deeper_than_the_limit_is_a_400_naming_it_and_nothing_is_stored(
    team_a, key_client_for, field, levels
):
    # given a record whose metadata or params nest past the body's 64 levels (root, calls, the
    # record and the field are the first four); 500 levels were a RecursionError storing it (a 500)
    client = key_client_for(team_a.application)
    nested = '{"a": ' * levels + '"x"' + "}" * levels
    body = (
        '{"calls": [{"id": "c-deep", "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
        f'"{field}": {nested}}}]}}'
    )

    response = client.post("/api/v1/calls/", body, content_type="application/json")

    # then it is refused naming the field, and nothing was stored
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("nesting_too_deep", f"calls[0].{field}")
    assert "more than 64 levels deep" in error["message"]
    assert Call.objects.count() == 0


def test_an_ingested_call_nested_to_the_limit_is_stored(team_a, key_client_for):
    client = key_client_for(team_a.application)
    nested: Any = "x"
    for _ in range(61):  # the deepest object is the body's 64th level
        nested = {"a": nested}

    response = client.post(
        "/api/v1/calls/", {"calls": [{"id": "c-deep", "model": "gpt-4o-mini", "metadata": nested}]}, format="json"
    )

    assert response.status_code == 201, response.content
    assert Call.objects.get(client_call_id="c-deep").metadata == nested


@pytest.mark.parametrize("stream", [False, True])
def test_a_usage_echo_beyond_64_bits_is_recorded_clamped(gateway_client, fake_upstream, stream):
    model_for(provider_for(fake_upstream))
    fake_upstream.enqueue(reply("Hello", prompt_tokens=2**70, completion_tokens=2**70))

    if stream:
        chunks = gateway_client.sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    else:
        completion = gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
        text = completion.choices[0].message.content or ""

    [call] = stored_calls(expected=1)
    assert text == "Hello"
    assert (call.input_tokens, call.output_tokens) == (INT32_MAX, INT32_MAX)
