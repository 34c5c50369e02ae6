"""One journey through the evaluation pages in a real browser (headless Chromium), by keyboard
where a keyboard can do it: create a dataset, upload items, start a recorded-output run with
deterministic scorers, watch the live section poll until a real Celery worker completes the run,
and read the per-scorer summary; all under the Content-Security-Policy with no error.

Run alone: `.venv/bin/pytest evaluations/tests/test_views_browser.py -m browser -q`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from accounts.caller import caller_for_user
from accounts.types import Role
from controlplane.tests.browser import browser, browser_for, requires_chromium  # noqa: F401 - fixtures
from evaluations import services
from evaluations.items import parse_item
from evaluations.models import Dataset, EvalRun
from evaluations.types import RunStatus

pytestmark = [pytest.mark.browser, requires_chromium, pytest.mark.django_db(transaction=True)]

ITEMS = "\n".join(
    f'{{"input": "Where is order {number}?", "expected_output": "Order {number} ships tomorrow."}}'
    for number in range(1, 7)
)


def test_create_upload_run_and_read_the_summary_by_keyboard(team_a, celery_worker, browser_for, tmp_path: Path):  # noqa: F811 - fixture
    tab = browser_for(team_a.members[Role.PROMPT_ENGINEER])
    page: Any = tab.page

    # Create a dataset: type in the form, submit with Enter.
    tab.visit("/evaluations/")
    page.get_by_text("No datasets yet.").wait_for()
    page.get_by_label("Name").focus()
    page.keyboard.type("order-questions")
    page.keyboard.press("Enter")
    page.wait_for_url("**/evaluations/datasets/*/")
    dataset = Dataset.objects.get(name="order-questions")
    page.get_by_text("No items at v1.").wait_for()

    # Upload six items (choosing a file needs the file chooser; the button is pressed by keyboard).
    upload = tmp_path / "orders.jsonl"
    upload.write_text(ITEMS + "\n")
    page.get_by_label("File").set_input_files(str(upload))
    page.get_by_role("button", name="Upload").press("Enter")
    page.wait_for_url(f"**/evaluations/datasets/{dataset.pk}/?version=2")
    page.get_by_text("Where is order 6?").wait_for()
    tab.screenshot("evaluations-dataset")

    # Start a recorded-output run with two deterministic scorers.
    page.get_by_role("link", name="Run an evaluation").press("Enter")
    page.wait_for_url("**/evaluations/runs/new/?dataset=*")
    page.get_by_label("Scorers").select_option(["kind:exact_match", "kind:contains"])
    page.get_by_role("button", name="Start the run").press("Enter")
    page.wait_for_url("**/evaluations/runs/*/")
    run = EvalRun.objects.get(dataset=dataset)

    # The live section polls every 2 s until the worker has scored every item, then shows the summary.
    page.locator("#run-status", has_text="Completed").wait_for(timeout=60_000)
    summary = page.locator("#run-summary")
    summary.wait_for()
    tab.screenshot("evaluations-run-completed")

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert (run.done_count, run.failed_count) == (6, 0)
    assert page.locator("#run-progress").get_attribute("value") == "6"
    rows = summary.locator("tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("th").inner_text() == "exact_match"
    assert "1.000" in rows.nth(0).inner_text()
    assert "100%" in rows.nth(0).inner_text()
    assert page.locator("#run-results tbody tr").count() == 6
    assert page.locator("#run-live[hx-trigger]").count() == 0  # polling stopped
    tab.assert_clean()


def test_compare_two_runs_draws_the_histogram_and_opens_both_answers(team_a, celery_worker, browser_for):  # noqa: F811 - fixture
    engineer = caller_for_user(team_a.members[Role.PROMPT_ENGINEER])
    dataset = services.dataset_create(caller=engineer, team_id=team_a.team.id, name="orders")
    services.dataset_items_change(
        caller=engineer,
        dataset=dataset,
        add=[
            services.NewItem(
                data=parse_item(
                    {"input": f"q{n}", "expected_output": f"a{n}", "metadata": {"old": f"a{n}" if n % 2 else "wrong"}}
                ),
                where=f"items[{n}]",
            )
            for n in range(4)
        ],
    )
    baseline, candidate = (
        wait_for(
            services.eval_run_create(
                caller=engineer,
                dataset_id=dataset.pk,
                target=services.TargetRequest(kind="recorded", column=column),
                scorers=[services.ScorerRequest(kind="exact_match")],
            )
        )
        for column in ("expected_output", "metadata.old")
    )
    tab = browser_for(team_a.members[Role.VIEWER])
    page: Any = tab.page

    tab.visit(f"/evaluations/compare/?run={baseline.pk}&run={candidate.pk}")
    page.locator(".js-plotly-plot svg.main-svg").first.wait_for()
    summary = page.get_by_text("Both answers").first
    summary.focus()
    page.keyboard.press("Enter")
    page.get_by_role("cell", name="wrong").wait_for()
    tab.screenshot("evaluations-compare")

    baseline_answer, candidate_answer = page.locator("details[open] td").all_inner_texts()
    assert baseline_answer in {"a0", "a2"}  # the two regressions: their order is by change, then key
    assert candidate_answer == "wrong"
    tab.assert_clean()


def wait_for(run: EvalRun, timeout: float = 60) -> EvalRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status == RunStatus.COMPLETED:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run.pk} is {run.status} after {timeout} s")
