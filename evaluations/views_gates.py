"""The gates page: every active evaluation gate on a prompt's protected label in the caller's
teams with its last verdict, and (for admins) the form that sets one and the button that
switches one off, over evaluations.services.gates and evaluations.gate_selectors."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.authentication import get_caller
from accounts.caller import Caller
from core.errors import NotFound
from core.pages import Refusal, page_action
from evaluations import gate_selectors, selectors
from evaluations.forms import BUILTIN_PREFIX, GateCreateForm
from evaluations.models import EvaluationGate
from evaluations.permissions import SET_GATE
from evaluations.services import gates
from evaluations.views import NAV, navigate, scorer_choices
from prompts import selectors as prompt_selectors

GATES_PAGE = "evaluations/gates.html"
GATES_SECTION = "evaluations/partials/_gates.html"


def _gates_context(
    caller: Caller, *, form: GateCreateForm | None = None, refusal: Refusal | None = None
) -> dict[str, Any]:
    rows = []
    for gate in gate_selectors.gate_list(caller=caller)[:200]:
        rows.append(
            {
                "gate": gate,
                "last_check": gate_selectors.gate_check_list(gate=gate).first(),
                "can_set": caller.has_permission(SET_GATE, team_id=gate.team_id),
            }
        )
    settable = [team_id for team_id in caller.team_ids if caller.has_permission(SET_GATE, team_id=team_id)]
    prompts = (
        [prompt for prompt in prompt_selectors.prompt_list(caller=caller)[:500] if prompt.team_id in settable]
        if settable
        else []
    )
    datasets = (
        [dataset for dataset in selectors.dataset_list(caller=caller)[:500] if dataset.team_id in settable]
        if settable
        else []
    )
    return {
        "nav_current": NAV,
        "rows": rows,
        "can_set": bool(prompts),
        "prompts": prompts,
        "datasets": datasets,
        "form": form or GateCreateForm(scorer_choices=scorer_choices(caller)),
        "error": refusal.message if refusal else "",
    }


@login_required
@require_http_methods(["GET", "HEAD"])
def gate_list(request: HttpRequest) -> HttpResponse:
    return render(request, GATES_PAGE, _gates_context(get_caller(request)))


@login_required
@require_POST
def gate_create(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    form = GateCreateForm(request.POST, scorer_choices=scorer_choices(caller))

    def create() -> EvaluationGate:
        data = form.cleaned_data
        prompt = prompt_selectors.prompt_get_by_id(caller=caller, prompt_id=data["prompt"])  # another team's: 404
        requests = [
            gates.GateScorerRequest(kind=value, min_score=data["min_score"])
            if f"{source}:" == BUILTIN_PREFIX
            else gates.GateScorerRequest(scorer_id=int(value), min_score=data["min_score"])
            for source, value in data["scorers"]
        ]
        return gates.gate_create(
            caller=caller,
            prompt=prompt,
            label=data["label"],
            dataset_id=data["dataset"],
            scorers=requests,
            dataset_version=data["dataset_version"],
            model=data["model"],
            requires_no_regression=data["requires_no_regression"],
            request=request,
        )

    return page_action(
        request,
        create,
        form=form,
        success=lambda gate: navigate(request, reverse("evaluations:gates") + f"#gate-{gate.pk}"),
        context=lambda refusal: _gates_context(caller, form=form, refusal=refusal),
        page=GATES_PAGE,
        partial=GATES_SECTION,
        propagate=(NotFound,),
    )


@login_required
@require_POST
def gate_deactivate(request: HttpRequest, gate_id: int) -> HttpResponse:
    caller = get_caller(request)
    gate = gate_selectors.gate_get(caller=caller, gate_id=gate_id)  # another team's: 404
    return page_action(
        request,
        lambda: gates.gate_deactivate(caller=caller, gate=gate, request=request),
        success=lambda _: navigate(request, reverse("evaluations:gates")),
        context=lambda refusal: _gates_context(caller, refusal=refusal),
        page=GATES_PAGE,
        partial=GATES_SECTION,
    )
