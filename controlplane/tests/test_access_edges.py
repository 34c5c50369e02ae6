"""Operational endpoints behind settings: /metrics with METRICS_TOKEN, the API schema and docs
with API_SCHEMA_REQUIRES_LOGIN."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient


def test_metrics_are_open_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""

    response = client.get("/metrics")

    assert response.status_code == 200
    assert "controlplane_http_requests_total" in response.content.decode()


def test_metrics_require_the_bearer_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "scrape-token-0123456789"

    anonymous = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer another-token")
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789")

    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert anonymous.content.decode() == "Send 'Authorization: Bearer <token>' with the token set in METRICS_TOKEN.\n"
    assert b"controlplane_http_requests_total" not in wrong.content
    assert right.status_code == 200
    assert "controlplane_http_requests_total" in right.content.decode()


@pytest.mark.django_db
def test_the_schema_and_docs_need_a_caller_when_api_schema_requires_login(client, settings):
    settings.API_SCHEMA_REQUIRES_LOGIN = True

    schema = client.get("/api/schema/?format=json")
    docs = client.get("/api/docs/")

    assert schema.status_code == 401
    assert "Authentication required" in schema.json()["error"]["message"]
    assert (docs.status_code, docs["Location"]) == (302, "/login/?next=/api/docs/")


@pytest.mark.django_db
def test_the_schema_and_docs_are_served_to_users_and_keys_when_login_is_required(
    team_a, page_client_for, key_client_for, settings
):
    settings.API_SCHEMA_REQUIRES_LOGIN = True
    browser = page_client_for(team_a.members["viewer"])
    script: APIClient = key_client_for(team_a.application)

    assert browser.get("/api/schema/?format=json").json()["info"]["title"] == "LLMOps control plane API"
    assert script.get("/api/schema/?format=json").json()["info"]["title"] == "LLMOps control plane API"
    docs = browser.get("/api/docs/")
    assert docs.status_code == 200
    assert b'<div id="swagger-ui"></div>' in docs.content
    assert browser.get("/api/docs/?script").status_code == 200  # the page's script, not inline


@pytest.mark.django_db
def test_the_schema_and_docs_are_open_when_login_is_not_required(client, settings):
    settings.API_SCHEMA_REQUIRES_LOGIN = False

    assert client.get("/api/schema/?format=json").status_code == 200
    assert client.get("/api/docs/").status_code == 200
