"""Eval run pages: the list, the create form, and a run's page whose live section polls every
2 s while the run is queued or running (progress, ETA, cost so far, results as they arrive),
then shows the per-scorer summary. Cancel and retry-failed post to the services and answer
with the live section (or the refusal, e.g. 409 when the run already finished)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.authentication import get_caller
from accounts.caller import Caller
from core.errors import NotFound
from core.htmx import render_page
from core.pages import Refusal, page_action
from evaluations import selectors, services
from evaluations.forms import BUILTIN_PREFIX, RunCreateForm
from evaluations.models import EvalRun
from evaluations.permissions import RUN_EVAL
from evaluations.types import ACTIVE_RUN_STATUSES, ResultStatus, TargetKind
from evaluations.views import NAV, navigate, scorer_choices

RUNS_PAGE = "evaluations/runs.html"
RUN_FORM_PAGE = "evaluations/run_form.html"
RUN_PAGE = "evaluations/run.html"
LIVE_PARTIAL = "evaluations/partials/_run_live.html"
RUNS_SHOWN = 200
RESULTS_SHOWN = 100
POLL_SECONDS = 2


def target_text(run: EvalRun) -> str:
    """The run's target as a person reads it: prompt and version (and the label it came from),
    the model, or the recorded column."""
    target = run.target
    if run.target_kind == TargetKind.PROMPT:
        label = f" (from {target['label']})" if target.get("label") else ""
        return f"prompt {target.get('prompt')} v{target.get('version')}{label} on {target.get('model')}"
    if run.target_kind == TargetKind.MODEL:
        return f"model {target.get('model')}"
    return f"recorded output ({target.get('column')})"


@login_required
@require_http_methods(["GET", "HEAD"])
def run_list(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    runs = list(selectors.run_list(caller=caller)[:RUNS_SHOWN])
    for run in runs:
        run.target_text = target_text(run)  # type: ignore[attr-defined]  # for the page only
    context = {
        "nav_current": NAV,
        "runs": runs,
        "can_run": any(caller.has_permission(RUN_EVAL, team_id=team_id) for team_id in caller.team_ids),
    }
    return render(request, RUNS_PAGE, context)


def _runnable_datasets(caller: Caller) -> list[Any]:
    return [
        dataset
        for dataset in selectors.dataset_list(caller=caller).select_related("team")[:500]
        if caller.has_permission(RUN_EVAL, team_id=dataset.team_id)
    ]


def _run_form_context(caller: Caller, form: RunCreateForm, refusal: Refusal | None = None) -> dict[str, Any]:
    return {
        "nav_current": NAV,
        "form": form,
        "datasets": _runnable_datasets(caller),
        "error": refusal.message if refusal else "",
    }


@login_required
@require_http_methods(["GET", "POST"])
def run_create(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    choices = scorer_choices(caller)
    if request.method == "GET":
        form = RunCreateForm(initial={"dataset": request.GET.get("dataset", "")}, scorer_choices=choices)
        return render(request, RUN_FORM_PAGE, _run_form_context(caller, form))
    form = RunCreateForm(request.POST, scorer_choices=choices)

    def create() -> EvalRun:
        data = form.cleaned_data
        target = services.TargetRequest(
            kind=data["target_kind"],
            prompt=data["prompt"],
            label=data["label"] or None,
            version=data["version"],
            model=data["model"],
            column=data["column"],
        )
        scorers = [
            services.ScorerRequest(kind=value)
            if f"{source}:" == BUILTIN_PREFIX
            else services.ScorerRequest(scorer_id=int(value))
            for source, value in data["scorers"]
        ]
        return services.eval_run_create(
            caller=caller,
            dataset_id=data["dataset"],
            dataset_version=data["dataset_version"],
            target=target,
            scorers=scorers,
            repeats=data["repeats"],
            name=data["name"],
            request=request,
        )

    return page_action(
        request,
        create,
        form=form,
        success=lambda run: navigate(request, reverse("evaluations:run", args=[run.pk])),
        context=lambda refusal: _run_form_context(caller, form, refusal),
        page=RUN_FORM_PAGE,
        propagate=(NotFound,),  # another team's dataset: 404
    )


@dataclass(frozen=True)
class Progress:
    processed: int
    percent: float
    eta: timedelta | None
    is_active: bool


def run_progress(run: EvalRun) -> Progress:
    processed = run.done_count + run.failed_count
    percent = 100.0 * processed / run.total_count if run.total_count else 0.0
    eta = None
    is_active = run.status in ACTIVE_RUN_STATUSES
    if is_active and run.started_at and processed and run.remaining_count:
        elapsed = (timezone.now() - run.started_at).total_seconds()
        eta = timedelta(seconds=round(elapsed / processed * run.remaining_count))
    return Progress(processed=processed, percent=percent, eta=eta, is_active=is_active)


def _live_context(request: HttpRequest, run: EvalRun, *, error: str = "", notice: str = "") -> dict[str, Any]:
    caller = get_caller(request)
    finished = selectors.run_results(run=run).exclude(status=ResultStatus.PENDING)
    results = selectors.results_masked_for(caller=caller, run=run, results=finished[:RESULTS_SHOWN])
    items = {
        item.pk: item
        for item in selectors.items_masked_for(
            caller=caller,
            dataset=run.dataset,
            items=selectors.items_at(dataset=run.dataset, version=run.dataset_version).filter(
                id__in=[result.item_id for result in results]
            ),
        )
    }
    for result in results:
        result.item = items.get(result.item_id)  # type: ignore[attr-defined]  # for the page only
    progress = run_progress(run)
    return {
        "nav_current": NAV,
        "run": run,
        "target": target_text(run),
        "progress": progress,
        "poll_seconds": POLL_SECONDS,
        "results": results,
        "results_total": finished.count(),
        "summary": selectors.run_summary(run=run) if run.done_count else [],
        "can_run": caller.has_permission(RUN_EVAL, team_id=run.team_id),
        "has_failed": run.failed_count > 0,
        "error": error,
        "notice": notice,
    }


@login_required
@require_http_methods(["GET", "HEAD"])
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(caller=get_caller(request), run_id=run_id)
    return render_page(request, page=RUN_PAGE, partial=LIVE_PARTIAL, context=_live_context(request, run))


@login_required
@require_http_methods(["GET", "HEAD"])
def run_live(request: HttpRequest, run_id: int) -> HttpResponse:
    """The live section alone: what the run page polls."""
    run = selectors.run_get(caller=get_caller(request), run_id=run_id)
    return render(request, LIVE_PARTIAL, _live_context(request, run))


def _run_action(request: HttpRequest, run_id: int, action: str) -> HttpResponse:
    caller = get_caller(request)
    run = selectors.run_get(caller=caller, run_id=run_id)  # another team's: 404

    def act() -> str:
        if action == "cancel":
            services.eval_run_cancel(caller=caller, run=run, request=request)
            return "Cancelling: workers stop within seconds; answers already paid for are kept."
        count = services.eval_run_retry_failed(caller=caller, run=run, request=request)
        return f"Queued {count:,} failed result{'s' if count != 1 else ''} again."

    def done(notice: str) -> HttpResponse:
        if not getattr(request, "htmx", False):
            return redirect("evaluations:run", run.pk)
        fresh = selectors.run_get(caller=caller, run_id=run.pk)
        return render(request, LIVE_PARTIAL, _live_context(request, fresh, notice=notice))

    return page_action(
        request,
        act,
        success=done,
        context=lambda refusal: _live_context(request, run, error=refusal.message),
        page=RUN_PAGE,
        partial=LIVE_PARTIAL,
    )


@login_required
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    return _run_action(request, run_id, "cancel")


@login_required
@require_POST
def run_retry_failed(request: HttpRequest, run_id: int) -> HttpResponse:
    return _run_action(request, run_id, "retry")
