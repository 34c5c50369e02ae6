"""The compare page: pick 2-3 runs on one dataset version (the first is the baseline); per
scorer the difference with its paired interval and verdict, per item the regressions and
improvements sorted by the size of the change (each opening both answers side by side), and
a histogram of each run's score distribution. All numbers come from evaluations.compare."""

from __future__ import annotations

import uuid
from typing import Any

import plotly.graph_objects as go
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods

from accounts.authentication import get_caller
from core.errors import ApplicationError, NotFound
from core.htmx import render_page
from evaluations import compare, selectors
from evaluations.models import EvalRun
from evaluations.scorers.base import input_text
from evaluations.views import NAV

COMPARE_PAGE = "evaluations/compare.html"
COMPARE_PARTIAL = "evaluations/partials/_compare.html"
MAX_PICKED = 3
ITEMS_SHOWN = 50
ORDERS = {"largest": "largest change first", "smallest": "smallest change first"}


def score_histogram(runs: list[EvalRun], scores: dict[int, dict[str, list[float]]], scorer: str) -> dict[str, Any]:
    """Overlaid histograms of one scorer's per-item scores, one trace per run (as a dict for json_script)."""
    figure = go.Figure()
    for run in runs:
        figure.add_histogram(
            x=scores[run.pk].get(scorer, []), name=f"run {run.pk}", xbins={"start": 0, "end": 1.0001, "size": 0.05}
        )
    figure.update_layout(
        barmode="overlay",
        title=f"{scorer}: per-item scores",
        xaxis={"title": "score", "range": [0, 1.05]},  # the last bin holds the scores of 1
        yaxis={"title": "items"},
        margin={"l": 60, "r": 20, "t": 40, "b": 40},
        height=300,
        template="plotly_white",
    )
    figure.update_traces(opacity=0.6)
    return dict(figure.to_plotly_json())


def _item_texts(request: HttpRequest, comparison: compare.Comparison) -> dict[uuid.UUID, str | None]:
    """Each changed item's question as a person reads it (None when masked for the caller)."""
    keys = {change.item_key for pair in comparison.pairs for change in [*pair.regressions, *pair.improvements]}
    if not keys:
        return {}
    dataset = comparison.runs[0].dataset
    items = selectors.items_at(dataset=dataset, version=comparison.dataset_version).filter(key__in=keys)
    texts: dict[uuid.UUID, str | None] = {}
    for item in selectors.items_masked_for(caller=get_caller(request), dataset=dataset, items=items):
        texts[item.key] = None if getattr(item, "is_masked", False) else input_text(item.input)
    return texts


@login_required
@require_http_methods(["GET", "HEAD"])
def compare_page(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    picked = [value for value in request.GET.getlist("run") if value][:MAX_PICKED]
    order = request.GET.get("order") or "largest"
    context: dict[str, Any] = {
        "nav_current": NAV,
        "runs": list(selectors.run_list(caller=caller)[:200]),
        "picked": picked,
        "slots": [
            {"number": number, "chosen": picked[number - 1] if number <= len(picked) else ""}
            for number in range(1, MAX_PICKED + 1)
        ],
        "order": order,
        "orders": ORDERS,
    }
    if len(picked) < 2:
        if picked:
            context["error"] = "Pick at least two runs: the first is the baseline."
        return render_page(request, page=COMPARE_PAGE, partial=COMPARE_PARTIAL, context=context)
    try:
        run_ids = compare.parse_run_ids(",".join(picked))
        comparison = compare.runs_compare(caller=caller, run_ids=run_ids, limit=ITEMS_SHOWN, order=order)
    except NotFound:
        raise
    except ApplicationError as error:
        context["error"] = error.message
        return render_page(
            request, page=COMPARE_PAGE, partial=COMPARE_PARTIAL, context=context, status=error.status_code
        )
    scores = {
        run.pk: {name: list(by_key.values()) for name, by_key in selectors.run_item_scores(run=run).items()}
        for run in comparison.runs
    }
    names = sorted({entry.scorer for pair in comparison.pairs for entry in pair.scorers})
    texts = _item_texts(request, comparison)
    rows = [
        {
            "pair": pair,
            "regressions": [(change, texts.get(change.item_key)) for change in pair.regressions],
            "improvements": [(change, texts.get(change.item_key)) for change in pair.improvements],
        }
        for pair in comparison.pairs
    ]
    context.update(
        {
            "comparison": comparison,
            "rows": rows,
            "charts": {
                f"histogram-{index}": score_histogram(comparison.runs, scores, name) for index, name in enumerate(names)
            },
        }
    )
    return render_page(request, page=COMPARE_PAGE, partial=COMPARE_PARTIAL, context=context)
