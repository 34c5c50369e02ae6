"""Evaluation pages (htmx) over the same services and selectors as the API: datasets (list,
create, items at a version, versions, upload, export, add from calls) and scorers (built-ins,
the team's configured ones, create, try on one example). Runs are in views_runs.py, compare
and gates in views_compare.py.

Every member reads; prompt engineers, managers and admins change (evaluations.permissions).
A form offers only what the caller may do, but the services decide: a refused change answers
with the page's section, the refusal and its status (400, 403, 409), and changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors as account_selectors
from accounts.authentication import get_caller
from accounts.caller import Caller
from core.classification import Clearance
from core.errors import NotFound
from core.htmx import htmx_redirect, render_page
from core.pages import Refusal, page_action
from evaluations import selectors, services
from evaluations.forms import (
    BUILTIN_PREFIX,
    CONFIGURED_PREFIX,
    DatasetCreateForm,
    FromCallsForm,
    ScorerCreateForm,
    ScorerTryForm,
    UploadForm,
)
from evaluations.models import Dataset, DatasetVersion, ScorerConfig
from evaluations.permissions import CHANGE_DATASET, CHANGE_SCORER, RUN_EVAL, VIEW_SCORER
from evaluations.scorers import SPECS, ScorerError, config_problem
from evaluations.types import ScorerKind

NAV = "evaluations"
ITEMS_SHOWN = 200
VERSIONS_SHOWN = 100


def teams_with(caller: Caller, permission: str) -> list[tuple[int, str]]:
    """(id, name) of the caller's teams where they hold `permission`, by name: a form's choices."""
    return [
        (team.id, team.name)
        for team in account_selectors.team_list(caller=caller).order_by("name")
        if caller.has_permission(permission, team_id=team.id)
    ]


def navigate(request: HttpRequest, url: str) -> HttpResponse:
    return htmx_redirect(url) if getattr(request, "htmx", False) else redirect(url)


# Datasets ---------------------------------------------------------------------------

DATASETS_PAGE = "evaluations/datasets.html"
DATASETS_CREATE = "evaluations/partials/_dataset_create.html"


def _datasets_context(caller: Caller, *, form: DatasetCreateForm | None = None, error: str = "") -> dict[str, Any]:
    datasets = list(selectors.dataset_list(caller=caller).select_related("team")[:500])
    for dataset in datasets:
        dataset.is_masked = not selectors.dataset_is_visible(caller=caller, dataset=dataset)  # type: ignore[attr-defined]  # for the page only
    return {
        "nav_current": NAV,
        "datasets": datasets,
        "creatable_teams": teams_with(caller, CHANGE_DATASET),
        "form": form or DatasetCreateForm(),
        "classifications": Clearance.choices,
        "error": error,
    }


@login_required
@require_http_methods(["GET", "HEAD"])
def dataset_list(request: HttpRequest) -> HttpResponse:
    return render(request, DATASETS_PAGE, _datasets_context(get_caller(request)))


@login_required
@require_POST
def dataset_create(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    form = DatasetCreateForm(request.POST)

    def create() -> Dataset:
        data = form.cleaned_data
        team = account_selectors.team_get(caller=caller, team_id=data["team"])  # another team's: 404
        return services.dataset_create(
            caller=caller,
            team_id=team.id,
            name=data["name"],
            description=data["description"],
            classification=data["classification"],
            item_schema=data["item_schema"],
            request=request,
        )

    return page_action(
        request,
        create,
        form=form,
        success=lambda dataset: navigate(request, reverse("evaluations:dataset", args=[dataset.pk])),
        context=lambda refusal: _datasets_context(caller, form=form, error=refusal.message),
        page=DATASETS_PAGE,
        partial=DATASETS_CREATE,
        propagate=(NotFound,),
    )


DATASET_PAGE = "evaluations/dataset.html"
ITEMS_PARTIAL = "evaluations/partials/_items.html"
UPLOAD_PARTIAL = "evaluations/partials/_upload.html"


def _dataset_context(
    request: HttpRequest,
    dataset: Dataset,
    *,
    version: int | None = None,
    upload_form: UploadForm | None = None,
    refusal: Refusal | None = None,
) -> dict[str, Any]:
    caller = get_caller(request)
    number = version if version is not None else dataset.current_version
    items = selectors.items_at(dataset=dataset, version=number)
    shown = selectors.items_masked_for(caller=caller, dataset=dataset, items=items[:ITEMS_SHOWN])
    is_visible = selectors.dataset_is_visible(caller=caller, dataset=dataset)
    return {
        "nav_current": NAV,
        "dataset": dataset,
        "is_masked": not is_visible,
        "version": number,
        "items": shown,
        "item_total": items.count(),
        "versions": list(selectors.version_list(dataset=dataset)[:VERSIONS_SHOWN]),
        "can_change": is_visible and caller.has_permission(CHANGE_DATASET, team_id=dataset.team_id),
        "can_run": caller.has_permission(RUN_EVAL, team_id=dataset.team_id),
        "upload_form": upload_form or UploadForm(),
        "import_errors": getattr(refusal.error, "errors", None) if refusal else None,
        "import_error_total": getattr(refusal.error, "total", None) if refusal else None,
        "error": refusal.message if refusal else "",
    }


@login_required
@require_http_methods(["GET", "HEAD"])
def dataset_detail(request: HttpRequest, dataset_id: int) -> HttpResponse:
    caller = get_caller(request)
    dataset = selectors.dataset_get(caller=caller, dataset_id=dataset_id)
    number = selectors.version_number(dataset, request.GET.get("version"))
    context = _dataset_context(request, dataset, version=number)
    return render_page(request, page=DATASET_PAGE, partial=ITEMS_PARTIAL, context=context)


@login_required
@require_POST
def dataset_upload(request: HttpRequest, dataset_id: int) -> HttpResponse:
    caller = get_caller(request)
    dataset = selectors.dataset_get(caller=caller, dataset_id=dataset_id)  # another team's: 404
    form = UploadForm(request.POST, request.FILES)

    def upload() -> DatasetVersion:
        file = form.cleaned_data["file"]
        return services.dataset_import(
            caller=caller,
            dataset=dataset,
            file_name=file.name or "upload",
            data=file.read(),
            message=form.cleaned_data["message"],
            request=request,
        )

    return page_action(
        request,
        upload,
        form=form,
        success=lambda version: navigate(
            request, reverse("evaluations:dataset", args=[dataset.pk]) + f"?version={version.number}"
        ),
        context=lambda refusal: _dataset_context(request, dataset, upload_form=form, refusal=refusal),
        page=DATASET_PAGE,
        partial=UPLOAD_PARTIAL,
        errors_on_fields=False,  # an import's refusal lists its bad lines, shown apart from the field
    )


@login_required
@require_http_methods(["GET", "HEAD"])
def dataset_export(request: HttpRequest, dataset_id: int) -> StreamingHttpResponse:
    caller = get_caller(request)
    dataset = selectors.dataset_get(caller=caller, dataset_id=dataset_id)
    number = selectors.version_number(dataset, request.GET.get("version"))
    lines = selectors.dataset_export_lines(caller=caller, dataset=dataset, version=number)
    response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="dataset-{dataset.pk}-v{number}.jsonl"'
    return response


FROM_CALLS_PAGE = "evaluations/from_calls.html"


@login_required
@require_http_methods(["GET", "POST"])
def dataset_from_calls(request: HttpRequest) -> HttpResponse:
    """The dataset side of "add to dataset" on the calls list: it posts (or links with) the
    selected `call_ids`; the caller picks a dataset of the calls' team and confirms."""
    caller = get_caller(request)
    source = request.POST if request.method == "POST" else request.GET
    call_ids = [value for value in source.getlist("call_ids") if value]
    datasets = [
        dataset
        for dataset in selectors.dataset_list(caller=caller).select_related("team")[:500]
        if caller.has_permission(CHANGE_DATASET, team_id=dataset.team_id)
        and selectors.dataset_is_visible(caller=caller, dataset=dataset)
    ]

    def context(refusal: Refusal | None = None, form: FromCallsForm | None = None) -> dict[str, Any]:
        return {
            "nav_current": NAV,
            "call_ids": call_ids,
            "datasets": datasets,
            "form": form,
            "error": refusal.message if refusal else "",
        }

    if request.method == "GET" or "dataset" not in request.POST:
        return render(request, FROM_CALLS_PAGE, context())
    form = FromCallsForm(request.POST, call_ids=call_ids)

    def copy() -> services.FromCallsResult:
        dataset = selectors.dataset_get(caller=caller, dataset_id=form.cleaned_data["dataset"])
        return services.dataset_add_from_calls(
            caller=caller,
            dataset=dataset,
            call_ids=form.cleaned_data["call_ids"],
            message=form.cleaned_data["message"],
            request=request,
        )

    def copied(result: services.FromCallsResult) -> HttpResponse:
        dataset_id = form.cleaned_data["dataset"]
        url = reverse("evaluations:dataset", args=[dataset_id])
        return navigate(request, url + (f"?version={result.version.number}" if result.version else ""))

    return page_action(
        request,
        copy,
        form=form,
        success=copied,
        context=lambda refusal: context(refusal, form),
        page=FROM_CALLS_PAGE,
        errors_on_fields=False,
        propagate=(NotFound,),
    )


# Scorers ----------------------------------------------------------------------------

SCORERS_PAGE = "evaluations/scorers.html"
SCORER_CREATE = "evaluations/partials/_scorer_create.html"
SCORE_PARTIAL = "evaluations/partials/_score.html"


def builtin_scorers() -> list[dict[str, Any]]:
    return [
        {
            "kind": kind,
            "label": ScorerKind(kind).label,
            "version": spec.version,
            "description": spec.description,
            "default_threshold": spec.default_threshold,
            "needs": list(spec.needs),
        }
        for kind, spec in SPECS.items()
    ]


def _configured(caller: Caller) -> list[ScorerConfig]:
    scorers = list(selectors.scorer_list(caller=caller).select_related("team")[:500])
    for scorer in scorers:
        scorer.config = selectors.scorer_version_get(scorer=scorer).config  # type: ignore[attr-defined]  # for the page only
    return scorers


def _scorers_context(
    caller: Caller,
    *,
    form: ScorerCreateForm | None = None,
    try_form: ScorerTryForm | None = None,
    error: str = "",
) -> dict[str, Any]:
    configured = _configured(caller)
    return {
        "nav_current": NAV,
        "builtins": builtin_scorers(),
        "configured": configured,
        "creatable_teams": teams_with(caller, CHANGE_SCORER),
        "readable_teams": teams_with(caller, VIEW_SCORER),
        "form": form or ScorerCreateForm(),
        "try_form": try_form or ScorerTryForm(),
        "error": error,
    }


@login_required
@require_http_methods(["GET", "HEAD"])
def scorer_list(request: HttpRequest) -> HttpResponse:
    return render(request, SCORERS_PAGE, _scorers_context(get_caller(request)))


@login_required
@require_POST
def scorer_create(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    form = ScorerCreateForm(request.POST)

    def create() -> ScorerConfig:
        data = form.cleaned_data
        team = account_selectors.team_get(caller=caller, team_id=data["team"])  # another team's: 404
        return services.scorer_config_create(
            caller=caller,
            team_id=team.id,
            name=data["name"],
            kind=data["kind"],
            config=data["config"],
            description=data["description"],
            request=request,
        )

    return page_action(
        request,
        create,
        form=form,
        success=lambda scorer: navigate(request, reverse("evaluations:scorers") + f"#scorer-{scorer.pk}"),
        context=lambda refusal: _scorers_context(caller, form=form, error=refusal.message),
        page=SCORERS_PAGE,
        partial=SCORER_CREATE,
        propagate=(NotFound,),
    )


@login_required
@require_POST
def scorer_try(request: HttpRequest) -> HttpResponse:
    """Score one example: a configured scorer at its current version, or a built-in kind with
    an unsaved configuration (checked as if it were saved)."""
    caller = get_caller(request)
    form = ScorerTryForm(request.POST)

    def score() -> Any:
        source, value = form.cleaned_data["scorer"]
        if source == "scorer":
            scorer = selectors.scorer_get(caller=caller, scorer_id=value)
            instance = services.scorer_for_version(selectors.scorer_version_get(scorer=scorer))
        else:
            team_id = form.cleaned_data["team"] or (caller.team_ids[0] if caller.team_ids else 0)
            team = account_selectors.team_get(caller=caller, team_id=team_id)
            caller.require_permission(VIEW_SCORER, team_id=team.id, action="test scorers")
            instance = services.scorer_for_config(team_id=team.id, kind=value, config=form.cleaned_data["config"])
        return services.score_example(scorer=instance, example=form.example())

    def scored(result: Any) -> HttpResponse:
        context = {"try_form": form, "error": ""}
        if isinstance(result, ScorerError):
            context["scorer_error"] = result.message
        else:
            context["score"] = result
        return render_page(
            request, page=SCORERS_PAGE, partial=SCORE_PARTIAL, context={**_scorers_context(caller), **context}
        )

    return page_action(
        request,
        score,
        form=form,
        success=scored,
        context=lambda refusal: _scorers_context(caller, try_form=form, error=refusal.message),
        page=SCORERS_PAGE,
        partial=SCORE_PARTIAL,
        propagate=(NotFound,),
    )


def scorer_choices(caller: Caller, *, team_id: int | None = None) -> list[tuple[str, Any]]:
    """Grouped choices of a scorer select: the team's configured scorers, then the built-ins
    that need no configuration."""
    configured = [
        (f"{CONFIGURED_PREFIX}{scorer.pk}", f"{scorer.name} ({scorer.get_kind_display()}, v{scorer.current_version})")
        for scorer in selectors.scorer_list(caller=caller, team_id=team_id)[:500]
    ]
    builtins = [
        (f"{BUILTIN_PREFIX}{entry['kind']}", f"{entry['label']} (built-in)")
        for entry in builtin_scorers()
        if config_problem(entry["kind"], {}) is None
    ]
    return [("Configured", configured), ("Built-in", builtins)] if configured else [("Built-in", builtins)]
