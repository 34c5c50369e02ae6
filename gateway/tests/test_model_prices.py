"""Every served call is priced by the catalog model that served it (issue 11, item 3)."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import openai
import pytest
from django.apps import apps
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from compliance.models import AuditEvent
from core.testing import assert_refused, snapshot
from costs.budgets import rule_cache
from costs.models import BudgetPeriod, ModelPrice
from costs.pricing import price_cache, price_for
from costs.services import budget_create, price_set
from gateway import catalog, services
from gateway.models import LanguageModel
from gateway.pipeline import cost_text
from gateway.tests.conftest import model_for, provider_for, stored_calls
from gateway.tests.fake_upstream import reply
from gateway.tests.processes import env_of_test_run, manage
from observability.types import CallStatus

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "Hello there"}]
LAST_WEEK = timezone.now() - timedelta(days=7)


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    price_cache.clear()
    rule_cache.clear()
    catalog._cache.clear()
    yield
    price_cache.clear()
    rule_cache.clear()


def _team_budget(team) -> None:
    budget_create(caller=None, team=team, name="cap", scope="team", period="total", amount_usd=Decimal("100"))


def _reserved_units() -> int:
    return sum(BudgetPeriod.objects.values_list("reserved_units", flat=True))


# The gateway ----------------------------------------------------------------------------


def test_a_team_model_named_like_a_shared_one_is_charged_its_own_price(gateway_client, fake_upstream, team_a):
    # given OpenAI's gpt-4o in the shared catalog at OpenAI's price
    shared = model_for(provider_for(fake_upstream, name="openai"), name="gpt-4o")
    price_set(
        caller=None, model=shared, input_per_million=Decimal("2.5"), output_per_million=Decimal("10"),
        effective_from=LAST_WEEK,
    )  # fmt: skip
    # and the team's own gpt-4o (its own llama) at its own price
    own = model_for(provider_for(fake_upstream, name="llama", team=team_a.team), name="gpt-4o", team=team_a.team)
    price_set(
        caller=None, model=own, input_per_million=Decimal("1"), output_per_million=Decimal("2"),
        effective_from=LAST_WEEK,
    )  # fmt: skip
    fake_upstream.default = reply("Hi", prompt_tokens=1000, completion_tokens=500)

    raw = gateway_client.sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)

    # then the call costs the team model's price: 1000 x 1 + 500 x 2 per million (OpenAI's: 0.0075)
    assert raw.headers["x-controlplane-cost-usd"] == "0.00200000"
    [call] = stored_calls(expected=1)
    assert call.cost_usd == Decimal("0.00200000")


def test_a_team_model_without_a_price_is_refused_under_a_budget_and_nothing_is_reserved(
    gateway_client, fake_upstream, team_a
):
    # given a shared model of the same name with a price: it must not price the team's model
    shared = model_for(provider_for(fake_upstream, name="openai"), name="llama-new")
    price_set(
        caller=None, model=shared, input_per_million=Decimal("1"), output_per_million=Decimal("1"),
        effective_from=LAST_WEEK,
    )  # fmt: skip
    model_for(provider_for(fake_upstream, name="llama", team=team_a.team), name="llama-new", team=team_a.team)
    _team_budget(team_a.team)

    with pytest.raises(openai.ConflictError) as raised:
        gateway_client.sdk.chat.completions.create(model="llama-new", messages=MESSAGES)

    assert raised.value.body["code"] == "model_unpriced"  # type: ignore[index]
    assert raised.value.body["message"] == (  # type: ignore[index]
        "Model 'llama-new' has no price; set a price or mark it free before a budget can apply to its calls."
    )
    assert fake_upstream.chat_requests() == []
    assert _reserved_units() == 0
    [call] = stored_calls(expected=1)
    assert (call.status, call.http_status, call.error_type) == (CallStatus.REFUSED, 409, "model_unpriced")


def test_an_unpriced_model_is_served_when_no_budget_applies(gateway_client, fake_upstream, team_a):
    model_for(provider_for(fake_upstream, team=team_a.team), name="llama-new", team=team_a.team)

    raw = gateway_client.sdk.chat.completions.with_raw_response.create(model="llama-new", messages=MESSAGES)

    assert raw.http_response.status_code == 200
    assert raw.headers["x-controlplane-cost-usd"] == "0.00000000"


def test_a_model_marked_free_is_served_under_a_budget_at_zero(gateway_client, fake_upstream, team_a):
    free = model_for(provider_for(fake_upstream, team=team_a.team), name="llama-free", team=team_a.team)
    price_set(caller=None, model=free, is_free=True, effective_from=LAST_WEEK)
    _team_budget(team_a.team)
    fake_upstream.default = reply("Hi", prompt_tokens=1000, completion_tokens=500)

    raw = gateway_client.sdk.chat.completions.with_raw_response.create(model="llama-free", messages=MESSAGES)

    assert raw.headers["x-controlplane-cost-usd"] == "0.00000000"  # fixed notation, never 0E-8
    [call] = stored_calls(expected=1)
    assert (call.status, call.cost_usd) == (CallStatus.SUCCESS, Decimal(0))


def test_the_cost_header_is_written_in_fixed_notation():
    assert cost_text(Decimal("0E-8")) == "0.00000000"
    assert cost_text("0E-8") == "0.00000000"
    assert cost_text(Decimal("0.00725000")) == "0.00725000"


def test_a_price_changed_by_another_process_applies_to_the_next_call(gateway_client, fake_upstream, team_a, tmp_path):
    # The second process shares the server's cache: Redis when CACHE_URL names it, else the
    # default SQLite cache file in the test run's var folder (CONTROLPLANE_VAR_DIR is inherited).
    own = model_for(provider_for(fake_upstream, name="llama", team=team_a.team), name="team-llama", team=team_a.team)
    price_set(
        caller=None, model=own, input_per_million=Decimal("1"), output_per_million=Decimal("1"),
        effective_from=LAST_WEEK,
    )  # fmt: skip
    fake_upstream.default = reply("Hi", prompt_tokens=1000, completion_tokens=1000)
    first = gateway_client.sdk.chat.completions.with_raw_response.create(model="team-llama", messages=MESSAGES)
    assert first.headers["x-controlplane-cost-usd"] == "0.00200000"  # the server now holds the price table

    # when another process changes the price (catalog as code)
    path = tmp_path / "catalog.yaml"
    path.write_text(
        textwrap.dedent(
            """
            models:
              - name: team-llama
                provider: llama
                provider_model: upstream-model
                price: {input_per_million: 5, output_per_million: 5}
            """
        )
    )
    result = manage("gateway_sync", str(path), "--team", str(team_a.team.id), env=env_of_test_run(), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

    # then the server's next call is charged the new price
    second = gateway_client.sdk.chat.completions.with_raw_response.create(model="team-llama", messages=MESSAGES)
    assert second.headers["x-controlplane-cost-usd"] == "0.01000000"
    cache.clear()


# Who sets prices: API, pages, gateway_sync -------------------------------------------------


@pytest.fixture
def team_model(team_a):
    provider = services.provider_create(caller=None, team=team_a.team, name="acme", base_url="https://llm.example/v1")
    return services.model_create(caller=None, team=team_a.team, name="gpt-4o", provider=provider, provider_model="x")


def test_a_team_catalog_manager_prices_the_team_model_through_the_api_audited(team_a, client_for, team_model):
    admin = client_for(team_a.members["admin"])

    response = admin.patch(
        f"/api/v1/models/{team_model.id}/", {"input_per_million": "1", "output_per_million": "2"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["price"]["output_per_million"] == "2.000000"
    [price] = ModelPrice.objects.filter(language_model=team_model)
    assert (price.input_per_million, price.output_per_million, price.is_free) == (Decimal(1), Decimal(2), False)
    [event] = AuditEvent.objects.filter(action="model.price_set")
    assert (event.target_type, event.target_id, event.team_id) == ("model", str(team_model.id), team_a.team.id)
    assert event.before is None
    assert event.after is not None
    assert (event.after["input_per_million"], event.after["output_per_million"]) == ("1.000000", "2.000000")

    # a second change is audited with the price before it
    admin.patch(f"/api/v1/models/{team_model.id}/", {"is_free": True}, format="json")
    latest = AuditEvent.objects.filter(action="model.price_set").order_by("-id").first()
    assert latest is not None
    assert latest.before is not None
    assert latest.after is not None
    assert (latest.before["output_per_million"], latest.after["is_free"]) == ("2.000000", True)
    assert ModelPrice.objects.filter(language_model=team_model).count() == 2  # history kept


def test_a_member_without_the_catalog_permission_cannot_price_a_model(team_a, client_for, team_model):
    viewer = client_for(team_a.members["viewer"])

    assert_refused(
        viewer,
        "patch",
        f"/api/v1/models/{team_model.id}/",
        status=403,
        unchanged=(ModelPrice, AuditEvent.objects.filter(action="model.price_set")),
        data={"input_per_million": "1", "output_per_million": "2"},
    )


def test_a_team_admin_cannot_price_a_shared_model(team_a, client_for):
    provider = services.provider_create(caller=None, team=None, name="openai", base_url="https://llm.example/v1")
    shared = services.model_create(caller=None, team=None, name="gpt-4o", provider=provider, provider_model="gpt-4o")

    response = assert_refused(
        client_for(team_a.members["admin"]),
        "patch",
        f"/api/v1/models/{shared.id}/",
        status=403,
        unchanged=(ModelPrice,),
        data={"input_per_million": "0", "output_per_million": "0"},
    )
    assert "operators" in response.json()["error"]["message"]


def test_a_team_catalog_manager_prices_the_team_model_on_its_page(team_a, page_client_for, team_model):
    form = {"provider": str(team_model.provider_id), "provider_model": "x", "context_window": "8192", "tier": "medium"}
    viewer = page_client_for(team_a.members["viewer"])
    before = snapshot(ModelPrice)
    assert viewer.post(f"/gateway/models/{team_model.id}/", {**form, "is_free": "true"}).status_code == 403
    assert snapshot(ModelPrice) == before

    admin = page_client_for(team_a.members["admin"])
    response = admin.post(f"/gateway/models/{team_model.id}/", {**form, "is_free": "true"})

    assert response.status_code == 302, response.content
    [price] = ModelPrice.objects.filter(language_model=team_model)
    assert price.is_free
    page = admin.get(f"/gateway/models/{team_model.id}/").content.decode()
    assert "Current price: free" in page


def test_gateway_sync_prices_the_teams_model_and_keeps_the_history(team_a, tmp_path):
    services.provider_create(caller=None, team=None, name="openai", base_url="https://llm.example/v1")
    path = tmp_path / "catalog.yaml"

    def sync(input_price: str) -> str:
        path.write_text(
            textwrap.dedent(
                f"""
                models:
                  - name: gpt-4o
                    provider: openai
                    provider_model: llama-3
                    price: {{input_per_million: {input_price}, output_per_million: 2}}
                  - name: llama-free
                    provider: openai
                    provider_model: llama-3
                    price: {{is_free: true}}
                """
            )
        )
        out = StringIO()
        call_command("gateway_sync", str(path), "--team", str(team_a.team.id), stdout=out)
        return out.getvalue()

    sync("1")
    assert "Nothing to change" in sync("1")
    sync("3")

    own = LanguageModel.objects.get(team=team_a.team, name="gpt-4o")
    history = list(ModelPrice.objects.filter(language_model=own).order_by("effective_from"))
    assert [price.input_per_million for price in history] == [Decimal(1), Decimal(3)]
    assert ModelPrice.objects.get(language_model__name="llama-free").is_free
    assert price_for(team_id=team_a.team.id, model="gpt-4o", at=timezone.now()).input_per_million == 3  # type: ignore[union-attr]
    assert price_for(team_id=None, model="gpt-4o", at=timezone.now()).input_per_million == Decimal("2.5")  # type: ignore[union-attr]  # the list price


def test_gateway_sync_refuses_amounts_on_a_free_model_naming_the_line(team_a, tmp_path):
    services.provider_create(caller=None, team=None, name="openai", base_url="https://llm.example/v1")
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "models:\n  - name: m\n    provider: openai\n    provider_model: m\n"
        "    price: {is_free: true, input_per_million: 1}\n"
    )

    with pytest.raises(Exception, match="nothing was written"):
        call_command("gateway_sync", str(path), stdout=StringIO(), stderr=StringIO())
    assert not LanguageModel.objects.filter(name="m").exists()


# The migration and list prices ------------------------------------------------------------


def test_existing_prices_move_onto_the_shared_model_of_their_name_with_their_history(team_a):
    from importlib import import_module

    migration = import_module("costs.migrations.0003_prices_per_catalog_model")
    provider = services.provider_create(caller=None, team=None, name="openai", base_url="https://llm.example/v1")
    # models made as before the migration: no price taken over
    shared = LanguageModel.objects.create(name="gpt-4o", provider=provider, provider_model="gpt-4o")
    own = LanguageModel.objects.create(team=team_a.team, name="gpt-4o", provider=provider, provider_model="llama")
    ModelPrice.objects.create(
        model="gpt-4o", input_per_million=1, output_per_million=1, effective_from=LAST_WEEK - timedelta(days=1)
    )  # the seeded 2024 row is there too

    migration.attach_to_shared_models(apps, None)

    rows = ModelPrice.objects.filter(model="gpt-4o")
    assert rows.count() == 2
    assert set(rows.values_list("language_model_id", flat=True)) == {shared.id}
    assert not ModelPrice.objects.filter(language_model=own).exists()


def test_a_new_shared_model_takes_over_the_list_price_of_its_name_and_a_team_model_does_not(team_a):
    provider = services.provider_create(caller=None, team=None, name="openai", base_url="https://llm.example/v1")

    own = services.model_create(
        caller=None, team=team_a.team, name="gpt-4o-mini", provider=provider, provider_model="x"
    )
    assert price_for(team_id=team_a.team.id, model="gpt-4o-mini", at=timezone.now()) is None
    shared = services.model_create(caller=None, team=None, name="gpt-4o-mini", provider=provider, provider_model="x")

    assert ModelPrice.objects.filter(language_model=shared).count() == 1  # the seeded row
    assert price_for(team_id=None, model="gpt-4o-mini", at=timezone.now()).output_per_million == Decimal("0.6")  # type: ignore[union-attr]
    assert price_for(team_id=team_a.team.id, model="gpt-4o-mini", at=timezone.now()) is None
    assert not ModelPrice.objects.filter(language_model=own).exists()
