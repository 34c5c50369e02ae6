"""Gateway pages: catalog, provider and model forms, enable/disable, test connection, routing."""

from __future__ import annotations

import pytest

from accounts.tests.factories import UserFactory
from core import crypto
from core.testing import snapshot
from costs.models import ModelPrice
from gateway import catalog, services
from gateway.models import LanguageModel, Provider, RoutingPolicy
from gateway.tests.fake_upstream import FakeUpstream, fail

pytestmark = pytest.mark.django_db

CATALOG = (Provider, LanguageModel, RoutingPolicy, ModelPrice)
PROVIDER_FORM = {
    "name": "acme",
    "base_url": "https://llm.example.com/v1",
    "api_key": "sk-page-secret-123456",
    "connect_timeout_seconds": "5",
    "read_timeout_seconds": "60",
    "max_retries": "2",
    "retry_budget_seconds": "20",
}


@pytest.fixture(autouse=True)
def _fresh_catalog_cache() -> None:
    catalog._cache.clear()


@pytest.fixture
def client_for(page_client_for):
    """These people (the root conftest's admin, viewer, outsider) use the pages, not the API."""
    return page_client_for


@pytest.fixture
def provider(team_a):
    return services.provider_create(caller=None, team=team_a.team, name="acme", base_url="https://llm.example.com/v1")


@pytest.fixture
def model(team_a, provider):
    return services.model_create(
        caller=None, team=team_a.team, name="acme-large", provider=provider, provider_model="x"
    )


def refused(client, method: str, url: str, status: int, data: dict | None = None, **headers):
    before = snapshot(*CATALOG)
    response = getattr(client, method)(url, data or {}, **headers)
    assert response.status_code == status, response.status_code
    assert snapshot(*CATALOG) == before
    return response


def test_catalog_page_lists_own_and_shared_entries_only(viewer, team_a, team_b, model, django_assert_max_num_queries):
    shared = services.provider_create(caller=None, team=None, name="local", base_url="http://127.0.0.1:8090/v1")
    services.model_create(caller=None, team=None, name="smollm2-135m", provider=shared, provider_model="s")
    services.provider_create(caller=None, team=team_b.team, name="b-secret", base_url="https://b.example.com/v1")

    with django_assert_max_num_queries(12):
        response = viewer.get("/gateway/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "acme-large" in page
    assert "smollm2-135m" in page
    assert "b-secret" not in page
    assert "Add a provider" not in page  # viewers only read
    assert "Test connection" not in page


def test_admin_adds_a_provider_through_the_form(admin, team_a):
    response = admin.post("/gateway/providers/new/", {**PROVIDER_FORM, "team": team_a.team.id})

    assert response.status_code == 302
    provider = Provider.objects.get(name="acme")
    assert provider.team_id == team_a.team.id
    assert crypto.decrypt(provider.api_key_encrypted) == "sk-page-secret-123456"
    assert "sk-page-secret" not in admin.get(f"/gateway/providers/{provider.id}/").content.decode()
    assert "sk-page-secret" not in admin.get("/gateway/").content.decode()


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"base_url": "nope"}, "base_url"),
        ({"read_timeout_seconds": "601"}, "read_timeout_seconds must be from 0.1 to 600"),
        ({"max_retries": "many"}, "max_retries"),
    ],
)
def test_bad_provider_form_input_is_a_400_saying_what_to_fix(admin, team_a, change, text):
    response = refused(
        admin, "post", "/gateway/providers/new/", 400, {**PROVIDER_FORM, "team": team_a.team.id, **change}
    )

    assert text in response.content.decode()


def test_a_duplicate_provider_is_a_409(admin, team_a, provider):
    refused(admin, "post", "/gateway/providers/new/", 409, {**PROVIDER_FORM, "team": team_a.team.id})


def test_viewers_cannot_use_the_forms(viewer, team_a, provider, model):
    refused(viewer, "get", "/gateway/providers/new/", 403)
    refused(viewer, "post", "/gateway/providers/new/", 403, {**PROVIDER_FORM, "name": "x", "team": team_a.team.id})
    refused(viewer, "post", f"/gateway/providers/{provider.id}/", 403, PROVIDER_FORM)
    refused(viewer, "post", f"/gateway/providers/{provider.id}/enabled/", 403, {"is_enabled": "false"})
    refused(viewer, "post", f"/gateway/providers/{provider.id}/test/", 403)
    refused(viewer, "post", f"/gateway/models/{model.id}/enabled/", 403, {"is_enabled": "false"})
    refused(viewer, "get", f"/gateway/models/{model.id}/", 403)


def test_a_team_admin_cannot_share_a_provider(admin):
    refused(admin, "post", "/gateway/providers/new/", 403, {**PROVIDER_FORM, "team": "shared"})


def test_another_teams_entries_are_404_on_every_page(outsider, team_a, provider, model):
    refused(outsider, "get", f"/gateway/providers/{provider.id}/", 404)
    refused(outsider, "post", f"/gateway/providers/{provider.id}/", 404, {**PROVIDER_FORM, "name": "stolen"})
    refused(outsider, "post", f"/gateway/providers/{provider.id}/enabled/", 404, {"is_enabled": "false"})
    refused(outsider, "post", f"/gateway/providers/{provider.id}/test/", 404)
    refused(outsider, "get", f"/gateway/models/{model.id}/", 404)
    refused(outsider, "post", f"/gateway/models/{model.id}/enabled/", 404, {"is_enabled": "false"})
    refused(outsider, "post", "/gateway/providers/new/", 404, {**PROVIDER_FORM, "name": "x", "team": team_a.team.id})
    refused(outsider, "get", f"/gateway/routing/{team_a.application.id}/", 404)
    refused(outsider, "post", f"/gateway/routing/{team_a.application.id}/", 404, {"policy": "fixed", "model": ""})


def test_admin_edits_a_provider_keeping_its_key(admin, team_a):
    provider = services.provider_create(
        caller=None, team=team_a.team, name="acme", base_url="https://llm.example.com/v1", api_key="sk-keep-me-12345"
    )

    response = admin.post(f"/gateway/providers/{provider.id}/", {**PROVIDER_FORM, "api_key": "", "max_retries": "4"})

    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.max_retries == 4
    assert crypto.decrypt(provider.api_key_encrypted) == "sk-keep-me-12345"


def test_htmx_disable_swaps_the_row(admin, provider):
    response = admin.post(f"/gateway/providers/{provider.id}/enabled/", {"is_enabled": "false"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert f'id="provider-{provider.id}"' in response.content.decode()
    assert "Enable" in response.content.decode()
    provider.refresh_from_db()
    assert provider.is_enabled is False
    refused(admin, "post", f"/gateway/providers/{provider.id}/enabled/", 400, {"is_enabled": "maybe"})


def test_test_connection_shows_the_result_inline(admin, team_a):
    with FakeUpstream(models=["m1"]) as upstream:
        upstream.enqueue_models(fail(500, "Upstream exploded."))
        provider = services.provider_create(caller=None, team=team_a.team, name="fake", base_url=upstream.base_url)

        failed = admin.post(f"/gateway/providers/{provider.id}/test/", HTTP_HX_REQUEST="true")
        passed = admin.post(f"/gateway/providers/{provider.id}/test/", HTTP_HX_REQUEST="true")

    assert failed.status_code == 200
    assert "The provider answered HTTP 500. The provider is failing; try again later." in failed.content.decode()
    assert "Upstream exploded" not in failed.content.decode()  # the upstream's reply is never shown
    assert "Connected: 1 model(s) listed: m1." in passed.content.decode()


def test_admin_adds_and_disables_a_model(admin, team_a, provider):
    response = admin.post(
        "/gateway/models/new/",
        {
            "team": team_a.team.id,
            "name": "acme-small",
            "provider": provider.id,
            "provider_model": "acme-small-1",
            "context_window": "4096",
            "tier": "small",
            "fallbacks": "",
        },
    )

    assert response.status_code == 302
    model = LanguageModel.objects.get(name="acme-small")
    assert (model.team_id, model.tier, model.context_window) == (team_a.team.id, "small", 4096)

    admin.post(f"/gateway/models/{model.id}/enabled/", {"is_enabled": "false"})

    model.refresh_from_db()
    assert model.is_enabled is False


def test_bad_model_form_input_is_a_400(admin, team_a, provider):
    form = {
        "team": team_a.team.id,
        "name": "m",
        "provider": provider.id,
        "provider_model": "x",
        "context_window": "4096",
        "tier": "small",
        "fallbacks": "ghost",
    }

    response = refused(admin, "post", "/gateway/models/new/", 400, form)

    assert "no model named &#x27;ghost&#x27;" in response.content.decode()


def test_routing_page_sets_the_routing(page_client_for, team_a, model):
    manager = page_client_for(team_a.members["manager"])
    url = f"/gateway/routing/{team_a.application.id}/"
    assert manager.get(url).status_code == 200

    response = manager.post(url, {"policy": "fixed", "model": "acme-large", "fallbacks": ""})

    assert response.status_code == 200
    assert "Routing saved." in response.content.decode()
    assert RoutingPolicy.objects.get(application=team_a.application).model == "acme-large"


def test_routing_page_refuses_viewers_and_unknown_models(viewer, admin, team_a, model):
    url = f"/gateway/routing/{team_a.application.id}/"

    refused(viewer, "post", url, 403, {"policy": "fixed", "model": "acme-large"})
    response = refused(admin, "post", url, 400, {"policy": "fixed", "model": "ghost"})
    assert "no model named &#x27;ghost&#x27;" in response.content.decode()


def test_operator_sees_the_shared_option(page_client_for):
    operator = page_client_for(UserFactory.create(username="root-op", is_superuser=True))

    page = operator.get("/gateway/providers/new/").content.decode()

    assert "Shared (every team)" in page
