"""The project's own error pages and icon, as a first-time user meets them (DEBUG off)."""

from __future__ import annotations

import uuid

import pytest
from django.test import RequestFactory

from core import views

pytestmark = pytest.mark.django_db

DEBUG_MARKERS = ("Traceback", "Using the URLconf", "Django tried these URL patterns", "DEBUG = True", "technical")


@pytest.fixture(autouse=True)
def _production_mode(settings) -> None:
    settings.DEBUG = False


def _assert_project_404(response, path: str) -> None:
    assert response.status_code == 404
    assert [template.name for template in response.templates][:2] == ["404.html", "base.html"]
    page = response.content.decode()
    assert "<h1>Not found</h1>" in page
    assert f"<code>{path}</code>" in page  # says what was asked for
    assert 'class="brand"' in page
    assert 'rel="icon"' in page
    for marker in DEBUG_MARKERS:
        assert marker not in page


def test_an_unknown_call_id_shows_the_project_404_page(team_a, page_client_for):
    client = page_client_for(team_a.members["viewer"])
    path = f"/calls/{uuid.uuid4()}/"

    _assert_project_404(client.get(path), path)


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "1234", "0190f6a2-zzzz-7000-8000-000000000000", "%00"])
def test_a_malformed_call_id_is_a_404_not_a_server_error(team_a, page_client_for, bad_id):
    client = page_client_for(team_a.members["viewer"])

    response = client.get(f"/calls/{bad_id}/")

    assert response.status_code == 404
    assert response.templates[0].name == "404.html"


def test_a_malformed_id_in_other_pages_is_a_404_too(team_a, page_client_for):
    client = page_client_for(team_a.members["admin"])

    for path in ("/settings/applications/abc/", "/settings/teams/99999999999999999999999/", "/prompts/x/"):
        assert client.get(path).status_code == 404, path


def test_the_server_error_page_is_the_project_page_without_debug_details():
    request = RequestFactory().get("/anything/")

    response = views.server_error(request)

    assert response.status_code == 500
    page = response.content.decode()
    assert "<h1>Server error</h1>" in page
    assert 'class="brand"' in page
    assert 'href="/static/css/app.css"' in page
    for marker in DEBUG_MARKERS:
        assert marker not in page


def test_a_page_names_its_icon_and_favicon_ico_leads_to_it(team_a, page_client_for, client):
    home = page_client_for(team_a.members["viewer"]).get("/")
    assert '<link rel="icon" href="/static/favicon.ico" sizes="32x32">' in home.content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in home.content.decode()

    response = client.get("/favicon.ico")  # anonymous: browsers ask before anyone signs in

    assert response.status_code == 302
    assert response["Location"] == "/static/favicon.ico"
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    assert b"".join(icon.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO header
    svg = client.get("/static/favicon.svg")
    assert svg.status_code == 200
    assert svg["Content-Type"].startswith("image/svg+xml")
