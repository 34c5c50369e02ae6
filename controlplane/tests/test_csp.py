"""The Content-Security-Policy: every page sends it, and no template relies on what it refuses
(inline scripts or styles without the nonce, event-handler attributes, javascript: URLs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

TEMPLATE_ROOTS = [Path(settings.BASE_DIR) / "templates", *Path(settings.BASE_DIR).glob("*/templates")]
TEMPLATE_ROOTS += list(Path(settings.BASE_DIR).glob("*/*/templates"))
TEMPLATES = sorted(path for root in TEMPLATE_ROOTS for path in root.rglob("*.html") if ".venv" not in path.parts)

INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*\bnonce=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b(?![^>]*\bnonce=)[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)
STYLE_ATTRIBUTE = re.compile(r"\sstyle\s*=", re.I)
JAVASCRIPT_URL = re.compile(r"javascript:", re.I)
HTMX_EVAL = re.compile(r"\shx-on[:-]|hx-vals=['\"]js:|hx-vars=", re.I)


def test_templates_were_found():
    assert len(TEMPLATES) > 50
    assert Path(settings.BASE_DIR) / "templates" / "base.html" in TEMPLATES


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: str(path.relative_to(settings.BASE_DIR)))
def test_no_template_needs_what_the_policy_refuses(path):
    text = path.read_text()
    problems = [
        f"{name}: {match.group(0)!r}"
        for name, pattern in (
            ("inline <script> without the nonce", INLINE_SCRIPT),
            ("inline <style> without the nonce", INLINE_STYLE),
            ("event-handler attribute", EVENT_HANDLER),
            ("style attribute", STYLE_ATTRIBUTE),
            ("javascript: URL", JAVASCRIPT_URL),
            ("htmx attribute that evaluates JavaScript", HTMX_EVAL),
        )
        for match in pattern.finditer(text)
    ]
    assert problems == []


def test_json_script_data_is_allowed_and_the_rules_catch_what_they_should():
    assert not INLINE_SCRIPT.search('<script id="spend" type="application/json">{}</script>')
    assert not INLINE_SCRIPT.search('<script src="/static/js/app.js" defer></script>')
    assert not INLINE_STYLE.search('<style nonce="{{ request.csp_nonce }}">')
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert EVENT_HANDLER.search('<button type="button" onclick="copy()">')


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/login/", "/settings/", "/costs/", "/compliance/", "/api/docs/"])
def test_pages_send_the_policy(url, team_a, page_client_for, client):
    response = (client if url == "/login/" else page_client_for(team_a.members["admin"])).get(url)

    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    assert directives["script-src"].startswith("'self'")


@pytest.mark.django_db
def test_the_docs_pages_inline_style_carries_the_nonce_of_its_policy(team_a, page_client_for):
    response = page_client_for(team_a.members["admin"]).get("/api/docs/")

    nonce = re.findall(r"'nonce-([^']+)'", response["Content-Security-Policy"])[0]
    assert f'<style nonce="{nonce}">' in response.content.decode()
