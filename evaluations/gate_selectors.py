"""Reads of evaluation gates and their checks (for the API and the pages), scoped by team.

Kept apart from evaluations.selectors while the runs' selectors there are being written; the two
may merge."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from core.errors import NotFound
from core.ids import parse_whole_number
from evaluations.models import EvaluationGate, GateCheck
from evaluations.permissions import VIEW_RUN
from evaluations.selectors import readable_team_ids

if TYPE_CHECKING:
    from accounts.caller import Caller


def gate_list(
    *, caller: Caller, prompt_id: int | None = None, include_inactive: bool = False
) -> QuerySet[EvaluationGate]:
    queryset = EvaluationGate.objects.filter(team_id__in=readable_team_ids(caller, VIEW_RUN)).select_related(
        "dataset", "prompt"
    )
    if prompt_id is not None:
        queryset = queryset.filter(prompt_id=prompt_id)
    if not include_inactive:
        queryset = queryset.filter(is_active=True)
    return queryset.order_by("-id")


def gate_get(*, caller: Caller, gate_id: Any) -> EvaluationGate:
    parsed = parse_whole_number(str(gate_id))
    gate = gate_list(caller=caller, include_inactive=True).filter(pk=parsed).first() if parsed is not None else None
    if gate is None:
        raise NotFound(f"No evaluation gate with id {str(gate_id)[:40]!r} exists in your teams.")
    return gate


def gate_check_list(*, gate: EvaluationGate) -> QuerySet[GateCheck]:
    return GateCheck.objects.filter(gate=gate).select_related("candidate_version", "current_version").order_by("-id")


def gate_check_get(*, caller: Caller, check_id: Any) -> GateCheck:
    parsed = parse_whole_number(str(check_id))
    check = (
        GateCheck.objects.select_related(
            "gate", "gate__prompt", "gate__dataset", "candidate_version", "current_version"
        )
        .filter(gate__team_id__in=readable_team_ids(caller, VIEW_RUN), pk=parsed)
        .first()
        if parsed is not None
        else None
    )
    if check is None:
        raise NotFound(f"No gate check with id {str(check_id)[:40]!r} exists in your teams.")
    return check
