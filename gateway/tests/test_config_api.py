"""The catalog API: /api/v1/providers/, /api/v1/models/ and /api/v1/applications/{id}/routing/."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from accounts.tests.factories import UserFactory
from core import crypto
from core.testing import assert_hidden, assert_openai_error, assert_refused, snapshot
from costs.models import ModelPrice
from gateway import catalog, routing, services
from gateway.models import LanguageModel, Provider, RoutingPolicy
from gateway.tests.fake_upstream import FakeUpstream, fail, hang

pytestmark = pytest.mark.django_db

SECRET = "sk-test-5f1c9e2d7a4b8c3e6f0a1b2c3d4e5f60"
CATALOG = (Provider, LanguageModel, RoutingPolicy, ModelPrice)


@pytest.fixture(autouse=True)
def _fresh_catalog_cache() -> None:
    # The per-process cache outlives a test's transaction; start each test empty.
    catalog._cache.clear()


@pytest.fixture
def operator(client_for):
    return client_for(UserFactory.create(username="operator", is_superuser=True, is_staff=True))


@pytest.fixture
def shared_provider(db):
    return services.provider_create(caller=None, team=None, name="local", base_url="http://127.0.0.1:8090/v1")


@pytest.fixture
def team_provider(team_a):
    return services.provider_create(
        caller=None, team=team_a.team, name="acme-openai", base_url="https://api.example.com/v1", api_key=SECRET
    )


@pytest.fixture
def shared_model(shared_provider):
    return services.model_create(
        caller=None,
        team=None,
        name="smollm2-135m",
        provider=shared_provider,
        provider_model="smollm2-135m",
        tier="small",
    )


# Providers: create ---------------------------------------------------------------------


def test_admin_creates_a_team_provider_whose_key_is_encrypted_and_never_returned(admin, team_a, caplog):
    caplog.set_level(logging.DEBUG)

    response = admin.post(
        "/api/v1/providers/",
        {
            "team": team_a.team.id,
            "name": "acme-openai",
            "base_url": "https://api.openai.com/v1/",
            "api_key": SECRET,
            "connect_timeout_seconds": 2,
            "read_timeout_seconds": 30,
            "max_retries": 3,
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert {key: body[key] for key in body if key not in ("id", "created_at", "updated_at")} == {
        "team": team_a.team.id,
        "team_name": "Team A",
        "name": "acme-openai",
        "base_url": "https://api.openai.com/v1",
        "has_api_key": True,
        "connect_timeout_seconds": 2.0,
        "read_timeout_seconds": 30.0,
        "max_retries": 3,
        "retry_budget_seconds": 20.0,
        "is_enabled": True,
    }
    stored = Provider.objects.get(pk=body["id"])
    assert SECRET not in stored.api_key_encrypted
    assert crypto.decrypt(stored.api_key_encrypted) == SECRET
    assert SECRET not in response.content.decode()
    assert SECRET not in admin.get(f"/api/v1/providers/{stored.id}/").content.decode()
    assert SECRET not in admin.get("/api/v1/providers/").content.decode()
    assert all(
        SECRET not in record.getMessage() and SECRET not in json.dumps(record.__dict__, default=str)
        for record in caplog.records
    )


def test_a_shared_provider_needs_a_superuser(admin, operator):
    refused = assert_refused(
        admin,
        "post",
        "/api/v1/providers/",
        status=403,
        unchanged=CATALOG,
        data={"name": "shared-one", "base_url": "https://api.example.com/v1"},
    )
    assert "operators" in refused.json()["error"]["message"]

    response = operator.post(
        "/api/v1/providers/", {"name": "shared-one", "base_url": "https://api.example.com/v1"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["team"] is None
    assert response.json()["has_api_key"] is False


def test_viewer_cannot_add_change_or_disable_providers(viewer, team_a, team_provider):
    assert_refused(
        viewer,
        "post",
        "/api/v1/providers/",
        status=403,
        unchanged=CATALOG,
        data={"team": team_a.team.id, "name": "other", "base_url": "https://api.example.com/v1"},
    )
    url = f"/api/v1/providers/{team_provider.id}/"
    assert_refused(viewer, "patch", url, status=403, unchanged=CATALOG, data={"read_timeout_seconds": 5})
    assert_refused(viewer, "delete", url, status=403, unchanged=CATALOG)
    assert_refused(viewer, "post", f"{url}test/", status=403, unchanged=CATALOG)


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"base_url": "not a url"}, "base_url"),
        ({"base_url": "ftp://files.example.com/v1"}, "base_url"),
        ({"connect_timeout_seconds": 0}, "connect_timeout_seconds"),
        ({"read_timeout_seconds": 601}, "read_timeout_seconds"),
        ({"read_timeout_seconds": "slow"}, "read_timeout_seconds"),
        ({"max_retries": 11}, "max_retries"),
        ({"retry_budget_seconds": -1}, "retry_budget_seconds"),
        ({"name": "has spaces"}, "name"),
        ({"api_key": "two words"}, "api_key"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_provider_input_names_the_field(admin, team_a, data, param):
    body = {"team": team_a.team.id, "name": "acme", "base_url": "https://api.example.com/v1", **data}

    response = assert_refused(admin, "post", "/api/v1/providers/", status=400, unchanged=CATALOG, data=body)

    assert_openai_error(response, 400, param=param)


def test_a_duplicate_provider_name_is_a_conflict_naming_the_field(admin, team_a, team_provider):
    response = assert_refused(
        admin,
        "post",
        "/api/v1/providers/",
        status=409,
        unchanged=CATALOG,
        data={"team": team_a.team.id, "name": "acme-openai", "base_url": "https://api.example.com/v1"},
    )

    assert_openai_error(response, 409, param="name")


def test_a_team_provider_may_share_a_name_with_a_shared_one(admin, team_a, shared_provider):
    response = admin.post(
        "/api/v1/providers/",
        {"team": team_a.team.id, "name": "local", "base_url": "http://127.0.0.1:8001/v1"},
        format="json",
    )

    assert response.status_code == 201
    assert Provider.objects.filter(name="local").count() == 2


def test_creating_in_another_team_is_hidden(outsider, team_a):
    assert_hidden(
        outsider,
        "post",
        "/api/v1/providers/",
        unchanged=CATALOG,
        data={"team": team_a.team.id, "name": "sneaky", "base_url": "https://api.example.com/v1"},
    )


# Providers: read, update, disable ------------------------------------------------------


def test_list_shows_the_team_entries_and_the_shared_ones_only(
    viewer, team_a, team_b, team_provider, shared_provider, django_assert_max_num_queries
):
    services.provider_create(caller=None, team=team_b.team, name="b-secret", base_url="https://b.example.com/v1")
    for number in range(5):
        services.provider_create(
            caller=None, team=team_a.team, name=f"extra-{number}", base_url="https://x.example.com/v1"
        )

    with django_assert_max_num_queries(6):
        response = viewer.get("/api/v1/providers/")

    assert response.status_code == 200
    names = sorted(item["name"] for item in response.json()["results"])
    assert names == ["acme-openai", "extra-0", "extra-1", "extra-2", "extra-3", "extra-4", "local"]
    shared_only = viewer.get("/api/v1/providers/?team=shared").json()["results"]
    assert [item["name"] for item in shared_only] == ["local"]


@pytest.mark.parametrize("path", ["/api/v1/providers/", "/api/v1/models/"])
@pytest.mark.parametrize("team", ["abc", "%C2%B2", "99999999999999999999999"])
def test_a_team_filter_that_is_not_an_id_is_a_400_naming_it(admin, path, team):
    response = admin.get(f"{path}?team={team}")

    assert_openai_error(response, 400, param="team")


def test_an_application_key_cannot_read_the_catalog(team_a, key_client_for, shared_provider):
    client = key_client_for(team_a.application)

    assert_refused(client, "get", "/api/v1/providers/", status=403, unchanged=CATALOG)


def test_admin_updates_a_provider_and_its_key(admin, team_provider):
    url = f"/api/v1/providers/{team_provider.id}/"

    response = admin.patch(url, {"read_timeout_seconds": 12.5, "api_key": "sk-new-key-123456"}, format="json")

    assert response.status_code == 200
    assert response.json()["read_timeout_seconds"] == 12.5
    assert "sk-new-key" not in response.content.decode()
    team_provider.refresh_from_db()
    assert crypto.decrypt(team_provider.api_key_encrypted) == "sk-new-key-123456"

    removed = admin.patch(url, {"api_key": ""}, format="json")

    assert removed.json()["has_api_key"] is False
    team_provider.refresh_from_db()
    assert team_provider.api_key_encrypted == ""


def test_renaming_onto_an_existing_name_is_refused(admin, team_a, team_provider):
    other = services.provider_create(caller=None, team=team_a.team, name="other", base_url="https://o.example.com/v1")

    response = assert_refused(
        admin, "patch", f"/api/v1/providers/{other.id}/", status=409, unchanged=CATALOG, data={"name": "acme-openai"}
    )

    assert_openai_error(response, 409, param="name")


def test_delete_disables_the_provider_and_keeps_it(admin, team_provider):
    response = admin.delete(f"/api/v1/providers/{team_provider.id}/")

    assert response.status_code == 200
    assert response.json()["is_enabled"] is False
    team_provider.refresh_from_db()
    assert team_provider.is_enabled is False


def test_another_teams_provider_is_hidden(outsider, team_provider):
    url = f"/api/v1/providers/{team_provider.id}/"

    assert_hidden(outsider, "get", url, unchanged=CATALOG)
    assert_hidden(outsider, "patch", url, unchanged=CATALOG, data={"base_url": "https://evil.example.com/v1"})
    assert_hidden(outsider, "delete", url, unchanged=CATALOG)
    assert_hidden(outsider, "post", f"{url}test/", unchanged=CATALOG)


def test_a_team_admin_cannot_change_the_shared_catalog(admin, shared_provider):
    url = f"/api/v1/providers/{shared_provider.id}/"

    assert admin.get(url).status_code == 200
    assert_refused(admin, "patch", url, status=403, unchanged=CATALOG, data={"max_retries": 0})
    assert_refused(admin, "delete", url, status=403, unchanged=CATALOG)


# Providers: test connection ------------------------------------------------------------


def test_connection_test_lists_the_models_with_the_providers_key(admin, team_a):
    with FakeUpstream(models=["gpt-4o", "gpt-4o-mini"], api_key=SECRET) as upstream:
        provider = services.provider_create(
            caller=None, team=team_a.team, name="fake", base_url=upstream.base_url, api_key=SECRET
        )

        response = admin.post(f"/api/v1/providers/{provider.id}/test/")

    assert response.status_code == 200
    assert response.json() | {"elapsed_ms": 0} == {
        "ok": True,
        "message": "Connected: 2 model(s) listed: gpt-4o, gpt-4o-mini.",
        "models": ["gpt-4o", "gpt-4o-mini"],
        "status_code": 200,
        "elapsed_ms": 0,
    }
    assert [request.path for request in upstream.requests] == ["/v1/models"]
    assert upstream.requests[0].authorization == f"Bearer {SECRET}"


def test_connection_test_reports_the_upstream_error_without_the_key(admin, team_a):
    with FakeUpstream() as upstream:
        upstream.enqueue_models(fail(401, f"Incorrect API key provided: {SECRET}."))
        provider = services.provider_create(
            caller=None, team=team_a.team, name="fake", base_url=upstream.base_url, api_key=SECRET
        )

        response = admin.post(f"/api/v1/providers/{provider.id}/test/")

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    assert body["status_code"] == 401
    assert body["message"] == "The provider answered HTTP 401. Check the provider's API key."


def test_connection_test_reports_a_server_error(admin, team_a):
    with FakeUpstream() as upstream:
        upstream.enqueue_models(fail(503, "Overloaded, try later."))
        provider = services.provider_create(caller=None, team=team_a.team, name="fake", base_url=upstream.base_url)

        body = admin.post(f"/api/v1/providers/{provider.id}/test/").json()

    assert (body["ok"], body["status_code"], body["message"]) == (
        False,
        503,
        "The provider answered HTTP 503. The provider is failing; try again later.",
    )


def test_connection_test_reports_a_timeout(admin, team_a):
    with FakeUpstream() as upstream:
        upstream.enqueue_models(hang(seconds=5))
        provider = services.provider_create(
            caller=None, team=team_a.team, name="slow", base_url=upstream.base_url, read_timeout_seconds=0.3
        )

        body = admin.post(f"/api/v1/providers/{provider.id}/test/").json()

    assert body["ok"] is False
    assert body["message"].startswith("No answer within the provider's timeouts (connect 5 s, read 0.3 s)")


def test_connection_test_reports_a_refused_connection(admin, team_a):
    upstream = FakeUpstream().start()
    base_url = upstream.base_url
    upstream.stop()  # nothing listens on this port any more
    provider = services.provider_create(caller=None, team=team_a.team, name="gone", base_url=base_url)

    body = admin.post(f"/api/v1/providers/{provider.id}/test/").json()

    assert body["ok"] is False
    assert body["message"].startswith(f"Cannot connect to {base_url}")


# Models -----------------------------------------------------------------------------------


def test_admin_adds_a_team_model_on_a_shared_provider_by_name(admin, team_a, shared_model):
    response = admin.post(
        "/api/v1/models/",
        {
            "team": team_a.team.id,
            "name": "support-small",
            "provider": "local",
            "provider_model": "smollm2-135m",
            "context_window": 2048,
            "tier": "small",
            "fallbacks": ["smollm2-135m"],
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert {key: body[key] for key in body if key not in ("id", "created_at", "updated_at", "provider")} == {
        "team": team_a.team.id,
        "team_name": "Team A",
        "name": "support-small",
        "provider_name": "local",
        "provider_model": "smollm2-135m",
        "context_window": 2048,
        "tier": "small",
        "fallbacks": ["smollm2-135m"],
        "is_enabled": True,
        "price": None,
    }
    served = catalog.model_for(team_id=team_a.team.id, name="support-small")
    assert served is not None
    assert served.fallbacks == ("smollm2-135m",)


def test_an_operator_sets_a_shared_models_price(operator, shared_provider):
    response = operator.post(
        "/api/v1/models/",
        {
            "name": "big-local",
            "provider": shared_provider.id,
            "provider_model": "smollm2-135m",
            "tier": "large",
            "input_per_million": "2.5",
            "output_per_million": "10",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    price = response.json()["price"]
    assert {name: price[name] for name in price if name != "effective_from"} == {
        "input_per_million": "2.500000",
        "output_per_million": "10.000000",
        "cached_input_per_million": None,
        "is_free": False,
    }
    assert ModelPrice.objects.get(model="big-local").output_per_million == Decimal(10)


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"provider": "nope"}, "provider"),
        ({"provider": 999999}, "provider"),
        ({"fallbacks": ["does-not-exist"]}, "fallbacks"),
        ({"fallbacks": ["support"]}, "fallbacks"),
        ({"tier": "huge"}, "tier"),
        ({"context_window": 0}, "context_window"),
        ({"name": ""}, "name"),
        ({"input_per_million": "1"}, "output_per_million"),
        ({"input_per_million": "-1", "output_per_million": "1"}, "input_per_million"),
        ({"temperature": 0.2}, "temperature"),
    ],
)
def test_bad_model_input_names_the_field(admin, team_a, team_provider, data, param):
    body = {"team": team_a.team.id, "name": "support", "provider": "acme-openai", "provider_model": "gpt-4o", **data}

    response = assert_refused(admin, "post", "/api/v1/models/", status=400, unchanged=CATALOG, data=body)

    assert_openai_error(response, 400, param=param)


def test_a_model_cannot_use_another_teams_provider(admin, team_a, team_b):
    foreign = services.provider_create(
        caller=None, team=team_b.team, name="b-only", base_url="https://b.example.com/v1"
    )

    response = assert_refused(
        admin,
        "post",
        "/api/v1/models/",
        status=400,
        unchanged=CATALOG,
        data={"team": team_a.team.id, "name": "m", "provider": foreign.id, "provider_model": "x"},
    )

    assert_openai_error(response, 400, param="provider")


def test_a_shared_model_cannot_use_a_team_provider(operator, team_provider):
    response = assert_refused(
        operator,
        "post",
        "/api/v1/models/",
        status=400,
        unchanged=CATALOG,
        data={"name": "m", "provider": team_provider.id, "provider_model": "x"},
    )

    assert_openai_error(response, 400, param="provider")


def test_a_duplicate_model_name_is_a_conflict(admin, team_a, team_provider):
    services.model_create(caller=None, team=team_a.team, name="support", provider=team_provider, provider_model="x")

    response = assert_refused(
        admin,
        "post",
        "/api/v1/models/",
        status=409,
        unchanged=CATALOG,
        data={"team": team_a.team.id, "name": "support", "provider": "acme-openai", "provider_model": "y"},
    )

    assert_openai_error(response, 409, param="name")


def test_admin_updates_and_disables_a_model(admin, team_a, team_provider, shared_model):
    model = services.model_create(
        caller=None, team=team_a.team, name="support", provider=team_provider, provider_model="x"
    )
    assert catalog.model_for(team_id=team_a.team.id, name="support") is not None
    url = f"/api/v1/models/{model.id}/"

    response = admin.patch(url, {"fallbacks": ["smollm2-135m"], "context_window": 4096}, format="json")

    assert response.status_code == 200
    assert (response.json()["fallbacks"], response.json()["context_window"]) == (["smollm2-135m"], 4096)
    assert catalog.model_for(team_id=team_a.team.id, name="support").context_window == 4096  # type: ignore[union-attr]

    disabled = admin.delete(url)

    assert disabled.json()["is_enabled"] is False
    assert LanguageModel.objects.filter(pk=model.id).exists()
    assert catalog.model_for(team_id=team_a.team.id, name="support") is None


def test_a_models_name_cannot_change(admin, team_a, team_provider):
    model = services.model_create(
        caller=None, team=team_a.team, name="support", provider=team_provider, provider_model="x"
    )

    response = assert_refused(
        admin, "patch", f"/api/v1/models/{model.id}/", status=400, unchanged=CATALOG, data={"name": "renamed"}
    )

    assert_openai_error(response, 400, param="name")


def test_viewer_cannot_change_models(viewer, team_a, team_provider):
    model = services.model_create(
        caller=None, team=team_a.team, name="support", provider=team_provider, provider_model="x"
    )
    url = f"/api/v1/models/{model.id}/"

    assert viewer.get(url).status_code == 200
    assert_refused(
        viewer,
        "post",
        "/api/v1/models/",
        status=403,
        unchanged=CATALOG,
        data={"team": team_a.team.id, "name": "m2", "provider": "acme-openai", "provider_model": "x"},
    )
    assert_refused(viewer, "patch", url, status=403, unchanged=CATALOG, data={"tier": "large"})
    assert_refused(viewer, "delete", url, status=403, unchanged=CATALOG)


def test_another_teams_model_is_hidden(outsider, team_a, team_provider):
    model = services.model_create(
        caller=None, team=team_a.team, name="support", provider=team_provider, provider_model="x"
    )
    url = f"/api/v1/models/{model.id}/"

    assert_hidden(outsider, "get", url, unchanged=CATALOG)
    assert_hidden(outsider, "patch", url, unchanged=CATALOG, data={"tier": "large"})
    assert_hidden(outsider, "delete", url, unchanged=CATALOG)
    assert "support" not in outsider.get("/api/v1/models/").content.decode()


def test_model_list_query_count(viewer, team_a, team_provider, shared_model, django_assert_max_num_queries):
    for number in range(8):
        services.model_create(
            caller=None, team=team_a.team, name=f"m-{number}", provider=team_provider, provider_model="x"
        )

    with django_assert_max_num_queries(7):
        response = viewer.get("/api/v1/models/")

    assert response.status_code == 200
    assert len(response.json()["results"]) == 9
    assert viewer.get("/api/v1/models/?team=shared").json()["results"][0]["name"] == "smollm2-135m"


# Routing -----------------------------------------------------------------------------------


def test_routing_defaults_then_is_set(client_for, team_a, shared_model, team_provider):
    manager = client_for(team_a.members["manager"])
    services.model_create(caller=None, team=team_a.team, name="gpt-4o", provider=team_provider, provider_model="gpt-4o")
    url = f"/api/v1/applications/{team_a.application.id}/routing/"

    assert manager.get(url).json() == {
        "application": team_a.application.id,
        "policy": "fixed",
        "model": "",
        "fallbacks": [],
        "tiers": {"small": None, "medium": None, "large": None},
        "threshold": 0.5,
        "max_price": None,
        "updated_at": None,
    }

    response = manager.put(url, {"policy": "fixed", "model": "gpt-4o", "fallbacks": ["smollm2-135m"]}, format="json")

    assert response.status_code == 200
    assert (response.json()["model"], response.json()["fallbacks"]) == ("gpt-4o", ["smollm2-135m"])
    saved = routing.policy_for(application_id=team_a.application.id)
    assert saved is not None
    assert (saved.policy, saved.model, saved.fallbacks) == ("fixed", "gpt-4o", ("smollm2-135m",))


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"model": "b-model"}, "model"),
        ({"model": "nope"}, "model"),
        ({"fallbacks": ["b-model"]}, "fallbacks"),
        ({"model": "smollm2-135m", "fallbacks": ["smollm2-135m"]}, "fallbacks"),
        ({"policy": "cheapest"}, "policy"),
        ({"cache": True}, "cache"),
    ],
)
def test_routing_refuses_models_the_team_cannot_see(admin, team_a, team_b, shared_model, data, param):
    b_provider = services.provider_create(caller=None, team=team_b.team, name="b", base_url="https://b.example.com/v1")
    services.model_create(caller=None, team=team_b.team, name="b-model", provider=b_provider, provider_model="x")
    url = f"/api/v1/applications/{team_a.application.id}/routing/"

    response = assert_refused(admin, "put", url, status=400, unchanged=CATALOG, data=data)

    assert_openai_error(response, 400, param=param)


def test_routing_needs_change_rights_and_hides_other_teams(viewer, outsider, team_a, shared_model):
    url = f"/api/v1/applications/{team_a.application.id}/routing/"

    assert viewer.get(url).status_code == 200
    assert_refused(viewer, "put", url, status=403, unchanged=CATALOG, data={"model": "smollm2-135m"})
    assert_hidden(outsider, "get", url, unchanged=CATALOG)
    assert_hidden(outsider, "put", url, unchanged=CATALOG, data={"model": "smollm2-135m"})


def test_nothing_in_the_catalog_changes_on_a_refused_write(admin, team_a, team_provider):
    before = snapshot(*CATALOG)

    admin.post("/api/v1/models/", {"team": team_a.team.id, "name": "x", "provider": "nope"}, format="json")

    assert snapshot(*CATALOG) == before


def test_a_key_that_can_no_longer_be_decrypted_is_replaced_and_the_test_says_why(admin, team_provider):
    Provider.objects.filter(pk=team_provider.id).update(api_key_encrypted="gAAAA-not-a-valid-token")

    tested = admin.post(f"/api/v1/providers/{team_provider.id}/test/")

    assert tested.status_code == 200
    assert tested.json()["ok"] is False
    assert "enter the secret again" in tested.json()["message"]

    replaced = admin.patch(f"/api/v1/providers/{team_provider.id}/", {"api_key": "sk-fresh-key-12345"}, format="json")

    assert replaced.status_code == 200
    team_provider.refresh_from_db()
    assert crypto.decrypt(team_provider.api_key_encrypted) == "sk-fresh-key-12345"
