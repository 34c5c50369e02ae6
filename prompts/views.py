"""Prompt pages (htmx) over the same selectors and services as the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts import roles
from accounts import selectors as account_selectors
from accounts.authentication import get_caller
from core.classification import Clearance
from core.errors import ApplicationError, ValidationFailed
from core.htmx import htmx_redirect, render_page
from core.ids import parse_whole_number
from core.pages import page_action
from prompts import charts, selectors, services
from prompts.api import RenderInput
from prompts.diff import version_diff
from prompts.models import Prompt

Result = TypeVar("Result")


ERROR_PARTIAL = "prompts/partials/_error.html"


def _error(request: HttpRequest, error: ApplicationError) -> HttpResponse:
    return render(request, ERROR_PARTIAL, {"error": error}, status=error.status_code)


def _prompt_action(
    request: HttpRequest, action: Callable[[], Result], success: Callable[[Result], HttpResponse]
) -> HttpResponse:
    """Run a change: `success(result)`, or the error partial at the refusal's status."""
    return page_action(
        request, action, success=success, context=lambda refusal: {"error": refusal.error}, page=ERROR_PARTIAL
    )


def _to_prompt_page(request: HttpRequest, prompt_id: int) -> HttpResponse:
    url = reverse("prompts:detail", args=[prompt_id])
    return htmx_redirect(url) if request.htmx else redirect(url)  # type: ignore[attr-defined]  # django-htmx


def _json_field(request: HttpRequest, field: str, default: Any) -> Any:
    raw = request.POST.get(field, "").strip()
    if not raw:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValidationFailed(
            f"{field}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}).", param=field
        ) from None


@login_required
def prompt_list(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    filters = {
        "search": request.GET.get("q", "").strip(),
        "tag": request.GET.get("tag", "").strip(),
        "label": request.GET.get("label", "").strip(),
    }
    prompts = list(
        selectors.prompt_list(caller=caller, search=filters["search"], tag=filters["tag"], label=filters["label"])[:200]
    )
    teams = [
        team
        for team in account_selectors.team_list(caller=caller).order_by("name")
        if caller.has_permission(roles.ADD_PROMPT, team_id=team.id)
    ]
    context = {"prompts": prompts, "filters": filters, "creatable_teams": teams, "nav_current": "prompts"}
    return render_page(request, page="prompts/list.html", partial="prompts/partials/_rows.html", context=context)


@login_required
@require_POST
def prompt_create(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)

    def create() -> Prompt:
        team = account_selectors.team_get(caller=caller, team_id=request.POST.get("team", ""))
        tags = [tag.strip() for tag in request.POST.get("tags", "").split(",") if tag.strip()]
        return services.prompt_create(
            caller=caller,
            team=team,
            name=request.POST.get("name", "").strip(),
            description=request.POST.get("description", ""),
            tags=tags,
        )

    return _prompt_action(request, create, lambda prompt: _to_prompt_page(request, prompt.id))


def _detail_context(request: HttpRequest, prompt: Prompt) -> dict[str, Any]:
    caller = get_caller(request)
    versions = selectors.versions_masked_for(
        caller=caller, prompt=prompt, versions=selectors.version_list(prompt=prompt)
    )
    return {
        "prompt": prompt,
        "versions": versions,
        "labels": list(selectors.label_list(prompt=prompt)),
        "history": list(selectors.label_history(prompt=prompt)[:50]),
        "experiments": list(selectors.experiment_list(prompt=prompt)),
        "can_edit": caller.has_permission(roles.CHANGE_PROMPT, team_id=prompt.team_id, obj=prompt),
        "can_deploy": caller.has_permission(roles.DEPLOY_PROMPT, team_id=prompt.team_id, obj=prompt),
        "nav_current": "prompts",
    }


@login_required
def prompt_detail(request: HttpRequest, prompt_id: int) -> HttpResponse:
    prompt = selectors.prompt_get_by_id(caller=get_caller(request), prompt_id=prompt_id)
    return render(request, "prompts/detail.html", _detail_context(request, prompt))


@login_required
@require_POST
def label_deploy(request: HttpRequest, prompt_id: int) -> HttpResponse:
    caller = get_caller(request)
    prompt = selectors.prompt_get_by_id(caller=caller, prompt_id=prompt_id)

    def deploy() -> None:
        version = selectors.version_get(prompt=prompt, number=request.POST.get("version", ""))
        services.label_move(
            caller=caller,
            prompt=prompt,
            label=request.POST.get("label", "").strip(),
            version=version,
            reason=request.POST.get("reason", ""),
        )

    return _prompt_action(request, deploy, lambda _: _labels_response(request, prompt))


@login_required
@require_POST
def label_rollback(request: HttpRequest, prompt_id: int, label: str) -> HttpResponse:
    caller = get_caller(request)
    prompt = selectors.prompt_get_by_id(caller=caller, prompt_id=prompt_id)
    return _prompt_action(
        request,
        lambda: services.label_rollback(
            caller=caller, prompt=prompt, label=label, reason=request.POST.get("reason", "")
        ),
        lambda _: _labels_response(request, prompt),
    )


def _labels_response(request: HttpRequest, prompt: Prompt) -> HttpResponse:
    if not request.htmx:  # type: ignore[attr-defined]  # django-htmx
        return redirect("prompts:detail", prompt.id)
    return render(request, "prompts/partials/_labels.html", _detail_context(request, prompt))


@login_required
@require_http_methods(["GET", "POST"])
def version_create(request: HttpRequest, prompt_id: int) -> HttpResponse:
    caller = get_caller(request)
    prompt = selectors.prompt_get_by_id(caller=caller, prompt_id=prompt_id)
    newest = selectors.version_list(prompt=prompt).first()
    if newest is not None and not newest.is_visible_at(caller.clearance_in(prompt.team_id)):
        newest = None  # never prefill the form with messages above the viewer's clearance
    if request.method == "POST":
        return _prompt_action(
            request,
            lambda: services.prompt_version_create(
                caller=caller,
                prompt=prompt,
                messages=_json_field(request, "messages", None),
                params=_json_field(request, "params", None),
                variables=_json_field(request, "variables", None),
                context_budget=_json_field(request, "context_budget", None),
                classification=request.POST.get("classification") or None,
                commit_message=request.POST.get("commit_message", ""),
            ),
            lambda _: _to_prompt_page(request, prompt.id),
        )

    def pretty(value: Any) -> str:
        return json.dumps(value, indent=2, ensure_ascii=False)

    initial = {
        "messages": pretty(newest.messages if newest else [{"role": "system", "content": ""}]),
        "params": pretty(newest.params if newest else {"model": "gpt-4o-mini"}),
        "variables": pretty(newest.variables) if newest else "",
        "context_budget": pretty(newest.context_budget) if newest else "",
        "classification": newest.classification_name if newest else Clearance.INTERNAL.label,
    }
    context = {
        "prompt": prompt,
        "initial": initial,
        "classifications": Clearance.level_names(),
        "nav_current": "prompts",
    }
    return render(request, "prompts/version_form.html", context)


@login_required
def diff_page(request: HttpRequest, prompt_id: int) -> HttpResponse:
    caller = get_caller(request)
    prompt = selectors.prompt_get_by_id(caller=caller, prompt_id=prompt_id)
    versions = list(selectors.version_list(prompt=prompt))
    if not versions:
        raise ValidationFailed("This prompt has no versions to compare yet.")
    to_number = request.GET.get("to") or str(versions[0].number)
    to_parsed = parse_whole_number(to_number)
    from_number = request.GET.get("from") or str(max(to_parsed - 1, 1) if to_parsed is not None else 1)
    old = selectors.version_get(prompt=prompt, number=from_number)
    new = selectors.version_get(prompt=prompt, number=to_number)
    for side in (old, new):
        selectors.version_require_visible(caller=caller, prompt=prompt, version=side)
    context = {"prompt": prompt, "versions": versions, "diff": version_diff(old, new), "nav_current": "prompts"}
    return render_page(request, page="prompts/diff.html", partial="prompts/partials/_diff.html", context=context)


_PLAYGROUND_FIELDS: dict[str, Any] = {"variables": {}, "documents": [], "history": []}


@login_required
@require_http_methods(["GET", "POST"])
def playground(request: HttpRequest, prompt_id: int) -> HttpResponse:
    caller = get_caller(request)
    prompt = selectors.prompt_get_by_id(caller=caller, prompt_id=prompt_id)
    versions = list(selectors.version_list(prompt=prompt))
    context: dict[str, Any] = {"prompt": prompt, "versions": versions, "nav_current": "prompts"}
    if request.method == "POST":
        try:
            resolved = selectors.prompt_resolve(
                caller=caller, name=prompt.name, team_id=prompt.team_id, version=request.POST.get("version", "")
            )
            # The same checks as the render API's body (types, roles, classifications, scores).
            payload = RenderInput(
                data={name: _json_field(request, name, default) for name, default in _PLAYGROUND_FIELDS.items()}
            )
            if not payload.is_valid():
                field, problems = next(iter(payload.errors.items()))
                raise ValidationFailed(f"{field}: {problems}", param=field)
            context["result"] = selectors.prompt_render(
                caller=caller,
                resolved=resolved,
                variables=payload.validated_data["variables"],
                documents=payload.validated_data["documents"],
                history=payload.validated_data["history"],
            )
        except ApplicationError as error:
            return _error(request, error)
        except (KeyError, TypeError, AttributeError) as error:
            return _error(
                request,
                ValidationFailed(
                    f"documents must be a list of {{id, text, score?, classification?}} and history a list of "
                    f"{{role, content}} ({error})."
                ),
            )
        return render_page(
            request, page="prompts/playground.html", partial="prompts/partials/_render_result.html", context=context
        )
    selected = versions[0] if versions else None
    context["selected"] = selected
    context["variables_example"] = json.dumps(dict.fromkeys(selected.variables if selected else [], ""), indent=2)
    return render(request, "prompts/playground.html", context)


@login_required
def experiment_page(request: HttpRequest, prompt_id: int, experiment_id: int) -> HttpResponse:
    prompt = selectors.prompt_get_by_id(caller=get_caller(request), prompt_id=prompt_id)
    experiment = selectors.experiment_get(prompt=prompt, experiment_id=experiment_id)
    results = selectors.experiment_results(experiment=experiment)
    context = {
        "prompt": prompt,
        "experiment": experiment,
        "results": results,
        "charts": charts.results_bars(results),
        "nav_current": "prompts",
    }
    return render(request, "prompts/experiment.html", context)
