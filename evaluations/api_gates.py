"""REST API for comparing runs and for evaluation gates (thin: validate, call, serialize).

GET  /api/v1/eval-runs/compare/?runs=1,2[,3][&scorer=][&limit=][&order=largest|smallest]
GET  /api/v1/eval-runs/compare/items/<item key>/?runs=1,2      both answers side by side
GET  /api/v1/evaluation-gates/          POST (admins) sets a gate on a protected label
GET  /api/v1/evaluation-gates/<id>/     DELETE switches it off
GET  /api/v1/evaluation-gates/checks/<id>/
POST /api/v1/evaluation-gates/checks/<id>/override/   {"reason"}: a second person lets a refused move through
POST /api/v1/evaluations/gate/          the CI check (the same verdict as `manage.py eval_gate`)
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import get_caller
from core.api.serializers import MAX_INTEGER, IdField, StrictSerializer, validated
from evaluations import compare, gate_selectors, limits
from evaluations.api_runs import ScorerRefInput, optional_version_field
from evaluations.gate_report import verdict_body
from evaluations.models import EvaluationGate, GateCheck
from evaluations.paired import Interval
from evaluations.services import gates
from prompts import selectors as prompt_selectors

RUNS_PARAMETER = OpenApiParameter("runs", str, required=True, description="Run ids, the baseline first: 12,15[,17].")

# Compare ------------------------------------------------------------------------------


class CompareQuery(StrictSerializer):
    runs = serializers.CharField(max_length=200)
    scorer = serializers.CharField(required=False, default="", allow_blank=True, max_length=limits.MAX_NAME_CHARS)
    limit = serializers.IntegerField(
        required=False, default=compare.DEFAULT_ITEM_LIMIT, min_value=1, max_value=compare.MAX_ITEM_LIMIT
    )
    order = serializers.ChoiceField(choices=["largest", "smallest"], required=False, default="largest")


def _interval(interval: Interval | None) -> list[float] | None:
    return [interval.low, interval.high] if interval is not None else None


def _answer_body(answer: compare.Answer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "run": answer.run_id,
        "result": answer.result_id,
        "status": answer.status,
        "score": answer.score,
        "output": answer.output,
        "is_masked": answer.is_masked,
    }
    if answer.scores:
        body["scores"] = answer.scores
    return body


def _change_body(change: compare.ItemChange) -> dict[str, Any]:
    side_by_side = reverse("api-eval-runs-compare-item", kwargs={"item_key": str(change.item_key)})
    return {
        "item": str(change.item_key),
        "scorer": change.scorer,
        "delta": change.delta,
        "baseline": _answer_body(change.baseline),
        "candidate": _answer_body(change.candidate),
        "side_by_side": f"{side_by_side}?runs={change.baseline.run_id},{change.candidate.run_id}",
    }


def _scorer_body(row: compare.ScorerComparison) -> dict[str, Any]:
    return {
        "scorer": row.scorer,
        "kind": row.kind,
        "threshold": row.threshold,
        "items": row.pairs,
        "unpaired_items": row.unpaired,
        "baseline_mean": row.baseline_mean,
        "candidate_mean": row.candidate_mean,
        "difference": row.difference,
        "interval": _interval(row.interval),
        "baseline_pass_rate": row.baseline_pass_rate,
        "candidate_pass_rate": row.candidate_pass_rate,
        "mcnemar": {
            "only_baseline_passed": row.mcnemar.only_baseline_passed,
            "only_candidate_passed": row.mcnemar.only_candidate_passed,
            "p_value": row.mcnemar.p_value,
        }
        if row.mcnemar is not None
        else None,
        "verdict": row.verdict,
        "summary": row.summary,
    }


def comparison_body(comparison: compare.Comparison) -> dict[str, Any]:
    return {
        "dataset": comparison.dataset_id,
        "dataset_version": comparison.dataset_version,
        "runs": [
            {"id": run.pk, "name": run.name, "status": run.status, "target": run.target} for run in comparison.runs
        ],
        "comparisons": [
            {
                "baseline": pair.baseline.pk,
                "candidate": pair.candidate.pk,
                "scorers": [_scorer_body(row) for row in pair.scorers],
                "skipped_scorers": pair.skipped_scorers,
                "regressions": [_change_body(change) for change in pair.regressions],
                "improvements": [_change_body(change) for change in pair.improvements],
            }
            for pair in comparison.pairs
        ],
    }


class RunCompareView(APIView):
    @extend_schema(
        parameters=[
            RUNS_PARAMETER,
            OpenApiParameter("scorer", str, description="Only this scorer's item changes."),
            OpenApiParameter("limit", int, description="Regressions and improvements listed, each (default 20)."),
            OpenApiParameter("order", str, description="largest (default) or smallest change first."),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        query = validated(CompareQuery, request.query_params.dict())
        comparison = compare.runs_compare(
            caller=get_caller(request),
            run_ids=compare.parse_run_ids(query["runs"]),
            scorer=query["scorer"] or None,
            limit=query["limit"],
            order=query["order"],
        )
        return Response(comparison_body(comparison))


class RunCompareItemView(APIView):
    @extend_schema(parameters=[RUNS_PARAMETER], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, item_key: str) -> Response:
        side = compare.item_side_by_side(
            caller=get_caller(request),
            run_ids=compare.parse_run_ids(request.query_params.get("runs", "")),
            item_key=item_key,
        )
        return Response(
            {
                "item": str(side.item_key),
                "input": side.input,
                "expected_output": side.expected_output,
                "is_masked": side.is_item_masked,
                "answers": [_answer_body(answer) for answer in side.answers],
            }
        )


# Gates --------------------------------------------------------------------------------


class GateScorerInput(ScorerRefInput):
    min_score = serializers.FloatField(required=False, default=None, allow_null=True, min_value=0, max_value=1)


class GateCreateInput(StrictSerializer):
    prompt = serializers.CharField(max_length=limits.MAX_NAME_CHARS)
    team = IdField(required=False, default=None, allow_null=True)
    label = serializers.CharField(max_length=64)  # type: ignore[assignment]  # wire name; DRF pops declared fields
    dataset = IdField()
    dataset_version = optional_version_field()
    scorers = GateScorerInput(many=True, min_length=1, max_length=limits.MAX_RUN_SCORERS)  # type: ignore[call-arg]  # DRF passes list options to ListSerializer
    model = serializers.CharField(required=False, default="", allow_blank=True, max_length=256)
    requires_no_regression = serializers.BooleanField(required=False, default=True)


class GateSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id")
    prompt = serializers.CharField(source="prompt.name")
    dataset = serializers.IntegerField(source="dataset_id")

    class Meta:
        model = EvaluationGate
        fields = [
            "id",
            "team",
            "prompt",
            "label",
            "dataset",
            "dataset_version",
            "scorers",
            "model",
            "requires_no_regression",
            "is_active",
            "created_at",
            "updated_at",
        ]


class GateCheckSerializer(serializers.ModelSerializer):
    gate = serializers.IntegerField(source="gate_id")
    candidate_version = serializers.IntegerField(source="candidate_version.number")
    current_version = serializers.IntegerField(source="current_version.number", allow_null=True, default=None)
    candidate_run = serializers.IntegerField(source="candidate_run_id", allow_null=True)
    current_run = serializers.IntegerField(source="current_run_id", allow_null=True)

    class Meta:
        model = GateCheck
        fields = [
            "id",
            "gate",
            "candidate_version",
            "current_version",
            "dataset_version",
            "candidate_run",
            "current_run",
            "status",
            "reasons",
            "source",
            "requested_by_label",
            "created_at",
            "override_reason",
            "overridden_at",
        ]


class GateListView(APIView):
    @extend_schema(responses=GateSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(GateSerializer(gate_selectors.gate_list(caller=get_caller(request)), many=True).data)

    @extend_schema(request=GateCreateInput, responses=GateSerializer)
    def post(self, request: Request) -> Response:
        data = validated(GateCreateInput, request)
        caller = get_caller(request)
        prompt = prompt_selectors.prompt_get(caller=caller, name=data["prompt"], team_id=data["team"])
        gate = gates.gate_create(
            caller=caller,
            prompt=prompt,
            label=data["label"],
            dataset_id=data["dataset"],
            dataset_version=data["dataset_version"],
            scorers=[
                gates.GateScorerRequest(
                    scorer_id=entry["scorer"],
                    version=entry["version"],
                    kind=entry["kind"],
                    config=entry["config"],
                    name=entry["name"],
                    min_score=entry["min_score"],
                )
                for entry in data["scorers"]
            ],
            model=data["model"],
            requires_no_regression=data["requires_no_regression"],
            request=request,
        )
        return Response(GateSerializer(gate).data, status=status.HTTP_201_CREATED)


class GateDetailView(APIView):
    @extend_schema(responses=GateSerializer)
    def get(self, request: Request, gate_id: str) -> Response:
        return Response(GateSerializer(gate_selectors.gate_get(caller=get_caller(request), gate_id=gate_id)).data)

    @extend_schema(responses=GateSerializer)
    def delete(self, request: Request, gate_id: str) -> Response:
        caller = get_caller(request)
        gate = gates.gate_deactivate(
            caller=caller, gate=gate_selectors.gate_get(caller=caller, gate_id=gate_id), request=request
        )
        return Response(GateSerializer(gate).data)


class GateCheckDetailView(APIView):
    @extend_schema(responses=GateCheckSerializer)
    def get(self, request: Request, check_id: str) -> Response:
        check = gate_selectors.gate_check_get(caller=get_caller(request), check_id=check_id)
        return Response(GateCheckSerializer(check).data)


class OverrideInput(StrictSerializer):
    reason = serializers.CharField(max_length=2000)


class GateOverrideView(APIView):
    @extend_schema(request=OverrideInput, responses=GateCheckSerializer)
    def post(self, request: Request, check_id: str) -> Response:
        data = validated(OverrideInput, request)
        caller = get_caller(request)
        check = gates.gate_override(
            caller=caller,
            check=gate_selectors.gate_check_get(caller=caller, check_id=check_id),
            reason=data["reason"],
            request=request,
        )
        return Response(GateCheckSerializer(check).data)


class GateCheckInput(StrictSerializer):
    prompt = serializers.CharField(max_length=limits.MAX_NAME_CHARS)
    candidate = serializers.IntegerField(min_value=1, max_value=MAX_INTEGER)
    against = serializers.CharField(max_length=64)
    team = IdField(required=False, default=None, allow_null=True)
    dataset = serializers.CharField(required=False, default=None, allow_null=True, max_length=200)


class GateCheckView(APIView):
    """The CI check: 200 with `status` passed / failed / pending (runs started; ask again)."""

    @extend_schema(request=GateCheckInput, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        data = validated(GateCheckInput, request)
        verdict = gates.gate_check_ci(
            caller=get_caller(request),
            prompt_name=data["prompt"],
            candidate_version=data["candidate"],
            against_label=data["against"],
            team_id=data["team"],
            dataset_id=data["dataset"],
        )
        return Response(verdict_body(verdict))
