"""In a real browser (headless Chromium), the main pages load and work under the
Content-Security-Policy: no violation, no JavaScript error, and what each page is for
rendered (a plotly chart, an htmx partial, Swagger UI's operations).

Run alone: `.venv/bin/pytest controlplane/tests/test_browser_csp.py -m browser -q`.
Screenshots of every page go to var/browser-screenshots/ (BROWSER_TEST_SCREENSHOTS).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.caller import caller_for_user
from controlplane.tests.browser import requires_chromium
from core.ids import uuid7
from observability.models import Call
from observability.services import calls_store
from prompts import services as prompt_services

pytestmark = [pytest.mark.browser, requires_chromium, pytest.mark.django_db(transaction=True)]


def _store_calls(world: Any, count: int) -> list[Call]:
    now = timezone.now()
    records = [
        {
            "id": str(uuid7()),
            "created_at": (now - timedelta(hours=index * 5)).isoformat(),
            "team": world.team.id,
            "application": world.application.id,
            "request_model": model,
            "response_model": model,
            "provider": "openai",
            "end_user": f"user-{index % 3}",
            "request_messages": [{"role": "user", "content": f"Question {index}"}],
            "response_text": f"Answer {index}",
            "input_tokens": 100 + index,
            "output_tokens": 50 + index,
            "cost_usd": f"0.{index + 1:04d}",
            "latency_ms": 200.0 + index,
        }
        for index, model in enumerate(["gpt-4o-mini", "gpt-4o"] * (count // 2))
    ]
    stored = calls_store(records=records)
    return list(Call.objects.filter(id__in=[call.id for call in stored]).order_by("-created_at"))


@pytest.fixture
def seeded(team_a: Any) -> dict[str, Any]:
    """Team A with calls over the last days (so the cost charts have data) and a prompt with a version."""
    admin = team_a.members["admin"]
    calls = _store_calls(team_a, 30)
    caller = caller_for_user(admin)
    prompt = prompt_services.prompt_create(caller=caller, team=team_a.team, name="support-answer")
    prompt_services.prompt_version_create(
        caller=caller, prompt=prompt, messages=[{"role": "system", "content": "Answer {{ question }} briefly."}]
    )
    return {"world": team_a, "admin": admin, "calls": calls, "prompt": prompt}


PAGES = [
    # (name, path given the seeded data, what shows the page rendered)
    ("home", lambda data: "/", "main h1"),
    ("costs", lambda data: "/costs/", ".js-plotly-plot svg.main-svg"),
    ("budgets", lambda data: "/costs/budgets/", "main h1"),
    ("calls", lambda data: "/calls/", "#call-results tbody tr"),
    ("call-detail", lambda data: f"/calls/{data['calls'][0].id}/", "main h1"),
    ("prompts", lambda data: "/prompts/", "main h1"),
    ("prompt-detail", lambda data: f"/prompts/{data['prompt'].id}/", "main h1"),
    ("compliance", lambda data: "/compliance/", "main h1"),
    ("settings", lambda data: "/settings/", "main h1"),
    ("api-docs", lambda data: "/api/docs/", "#swagger-ui .opblock"),
]


def test_the_main_pages_load_without_policy_violations_or_errors(seeded, browser_for):
    page = browser_for(seeded["admin"])
    rendered = {}

    for name, path, selector in PAGES:
        page.visit(path(seeded))
        page.page.wait_for_selector(selector, state="attached")
        rendered[name] = page.page.locator(selector).count() > 0
        page.screenshot(name)

    assert rendered == {name: True for name, _, _ in PAGES}, page.where()
    page.assert_clean()


def test_costs_charts_draw_with_plotly_styles_and_redraw_after_an_htmx_filter(seeded, browser_for):
    page = browser_for(seeded["admin"])
    page.visit("/costs/")
    charts = page.page.locator("[data-plotly-figure]")
    chart_count = charts.count()
    page.page.wait_for_function(
        "count => document.querySelectorAll('[data-plotly-figure] svg.main-svg').length >= count", arg=chart_count
    )
    # plotly's own rules went into the nonce-carrying <style> the page made for it (under the
    # policy, one plotly made itself would have been refused and left the modebar unstyled).
    plotly_rules = page.page.evaluate("document.getElementById('plotly.js-style-global').sheet.cssRules.length")
    # Spend has one bar trace per model of the seeded calls.
    spend_traces = page.page.evaluate("document.getElementById('chart-spend').data.length")

    with page.page.expect_response(lambda response: "interval=hour" in response.url) as swap:
        page.page.select_option("select[name=interval]", "hour")
    page.page.wait_for_function(
        "count => document.querySelectorAll('#dashboard [data-plotly-figure] svg.main-svg').length >= count",
        arg=chart_count,
    )
    page.screenshot("costs-by-hour")

    assert chart_count == 6
    assert plotly_rules > 10
    assert spend_traces == 2
    assert swap.value.request.headers.get("hx-request") == "true"
    assert "interval=hour" in page.page.url  # hx-push-url
    assert "(UTC hours, from rollups)" in page.page.inner_text("#dashboard")
    page.assert_clean()


def test_the_calls_filter_swaps_in_its_partial_under_the_policy(seeded, browser_for):
    page = browser_for(seeded["admin"])
    page.visit("/calls/")
    rows_before = page.page.locator("#call-results tbody tr").count()

    with page.page.expect_response(lambda response: "model=gpt-4o-mini" in response.url) as swap:
        page.page.fill("input[name=model]", "gpt-4o-mini")
        page.page.press("input[name=model]", "Enter")
    page.page.wait_for_function("() => document.querySelectorAll('#call-results tbody tr').length === 15")
    models = page.page.locator("#call-results tbody tr td:nth-child(3)").all_inner_texts()
    page.screenshot("calls-filtered")

    assert rows_before == 30
    assert swap.value.request.headers.get("hx-request") == "true"
    assert sorted(set(models)) == ["gpt-4o-mini"]
    page.assert_clean()


def test_an_htmx_post_carries_the_csrf_token_and_swaps_its_answer_in(seeded, browser_for):
    page = browser_for(seeded["admin"])
    page.visit("/compliance/")

    with page.page.expect_response(lambda response: response.url.endswith("/compliance/verify/")) as answer:
        page.page.click("#verification button[type=submit]")
    page.page.wait_for_selector("#verification [role=status]")
    page.screenshot("compliance-verified")

    request = answer.value.request
    assert (request.method, answer.value.status) == ("POST", 200)
    assert request.headers.get("hx-request") == "true"
    assert request.headers.get("x-csrftoken")  # from the body's hx-headers, no inline script needed
    assert page.page.locator("#verification").count() == 1  # swapped outerHTML, not nested
    page.assert_clean()
