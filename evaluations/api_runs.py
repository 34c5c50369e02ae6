"""REST API for eval runs (thin: validate, call a service or selector, serialize)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import get_caller
from core.api.pagination import CursorPagination
from core.api.serializers import MAX_INTEGER, ChoiceField, ClearanceField, IdField, StrictSerializer, validated
from core.errors import ValidationFailed
from core.ids import parse_whole_number
from evaluations import limits, selectors, services
from evaluations.models import EvalResult, EvalRun
from evaluations.types import ResultStatus, ScorerKind, TargetKind

# Parameters a run may pass to its target's model (the gateway's pass-through ones that make
# sense for evaluation); any other name is refused when the run is created, not per item.
TARGET_PARAMS = {
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "stop",
    "response_format",
    "presence_penalty",
    "frequency_penalty",
}
MAX_CONCURRENCY = 256

# Input ----------------------------------------------------------------------------


@extend_schema_field({"type": "string", "enum": TargetKind.values})  # inline: "kind" names other enums too
class TargetKindField(ChoiceField):
    pass


def optional_version_field() -> serializers.IntegerField:
    """A version number (of a prompt, a scorer, a dataset); null or absent: the current one."""
    return serializers.IntegerField(required=False, default=None, allow_null=True, min_value=1, max_value=MAX_INTEGER)


class TargetInput(StrictSerializer):
    kind = TargetKindField(choices=TargetKind.values)
    prompt = serializers.CharField(required=False, default="", max_length=limits.MAX_NAME_CHARS)
    label = serializers.CharField(required=False, default=None, allow_null=True, max_length=64)  # type: ignore[assignment]  # wire name; DRF pops declared fields
    version = optional_version_field()
    model = serializers.CharField(required=False, default="", max_length=256)
    params = serializers.DictField(required=False, default=dict)
    column = serializers.CharField(required=False, default="", max_length=200)

    def validate_params(self, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - TARGET_PARAMS)
        if unknown:
            raise serializers.ValidationError(
                f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(TARGET_PARAMS))}."
            )
        return value


class ScorerRefInput(StrictSerializer):
    scorer = IdField(required=False, default=None, allow_null=True)
    version = optional_version_field()
    kind = ChoiceField(choices=ScorerKind.choices, required=False, default="")
    config = serializers.DictField(required=False, default=dict)
    name = serializers.CharField(required=False, default="", allow_blank=True, max_length=limits.MAX_NAME_CHARS)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if (attrs.get("scorer") is None) == (not attrs.get("kind")):
            raise serializers.ValidationError("give either scorer (a configured scorer's id) or kind (a built-in).")
        return attrs


class RunCreateInput(StrictSerializer):
    dataset = IdField()
    dataset_version = optional_version_field()
    name = serializers.CharField(required=False, default="", allow_blank=True, max_length=limits.MAX_NAME_CHARS)
    target = TargetInput()
    scorers = ScorerRefInput(many=True, min_length=1, max_length=limits.MAX_RUN_SCORERS)  # type: ignore[call-arg]  # DRF passes list options to ListSerializer
    repeats = serializers.IntegerField(required=False, default=1, min_value=1, max_value=limits.MAX_RUN_REPEATS)
    use_cache = serializers.BooleanField(required=False, default=False)
    max_concurrency = serializers.IntegerField(required=False, default=16, min_value=1, max_value=MAX_CONCURRENCY)


# Output ---------------------------------------------------------------------------


def _interval(value: Any) -> list[float] | None:
    return [round(value.low, 6), round(value.high, 6)] if value is not None else None


def summary_body(run: EvalRun, threshold: float | None) -> list[dict[str, Any]]:
    return [
        {
            "scorer": summary.name,
            "kind": summary.kind,
            "version": summary.version,
            "scored": summary.scored,
            "errors": summary.errors,
            "mean": summary.mean,
            "mean_ci95": _interval(summary.mean_interval),
            "pass_rate": summary.pass_rate,
            "pass_rate_ci95": _interval(summary.pass_interval),
            "threshold": summary.threshold,
            "mean_spread": summary.mean_spread,
        }
        for summary in selectors.run_summary(run=run, threshold=threshold)
    ]


class RunSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id")
    dataset = serializers.IntegerField(source="dataset_id")
    classification = ClearanceField(read_only=True)
    remaining_count = serializers.IntegerField(read_only=True)
    cost_usd = serializers.DecimalField(max_digits=18, decimal_places=8, coerce_to_string=True)

    class Meta:
        model = EvalRun
        fields = [
            "id",
            "team",
            "name",
            "dataset",
            "dataset_version",
            "target_kind",
            "target",
            "scorers",
            "repeats",
            "uses_cache",
            "max_concurrency",
            "classification",
            "status",
            "status_message",
            "total_count",
            "done_count",
            "failed_count",
            "remaining_count",
            "cost_usd",
            "created_by_label",
            "created_at",
            "started_at",
            "finished_at",
        ]


class ResultSerializer(serializers.ModelSerializer):
    classification = ClearanceField(read_only=True)
    is_masked = serializers.SerializerMethodField()
    scores = serializers.SerializerMethodField()
    cost_usd = serializers.DecimalField(max_digits=18, decimal_places=8, coerce_to_string=True, allow_null=True)

    class Meta:
        model = EvalResult
        fields = [
            "id",
            "item_key",
            "repeat",
            "status",
            "classification",
            "is_masked",
            "output",
            "error",
            "call_id",
            "model",
            "latency_ms",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "attempts",
            "finished_at",
            "scores",
        ]

    def get_is_masked(self, result: EvalResult) -> bool:
        return bool(getattr(result, "is_masked", False))

    def get_scores(self, result: EvalResult) -> list[dict[str, Any]]:
        masked = self.get_is_masked(result)
        return [
            {
                "scorer": score.scorer_name,
                "scorer_version": score.scorer_version,
                "value": score.value,
                "passed": score.passed,
                "label": score.label,
                "explanation": None if masked else score.explanation,
                "error": None if masked else (score.error or None),
                "spread": score.spread,
            }
            for score in result.scores.all()
        ]

    def to_representation(self, instance: EvalResult) -> dict[str, Any]:
        body = dict(super().to_representation(instance))
        if body["is_masked"]:
            body["output"] = None
            body["error"] = None
        return body


# Views ----------------------------------------------------------------------------


def _threshold(request: Request) -> float | None:
    raw = request.query_params.get("threshold")
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise ValidationFailed("threshold must be a number from 0 to 1.", param="threshold")
    return value


def _run_body(request: Request, run: EvalRun, code: int = status.HTTP_200_OK) -> Response:
    body = dict(RunSerializer(run).data)
    body["summary"] = summary_body(run, _threshold(request))
    return Response(body, status=code)


class RunListView(generics.ListAPIView):
    serializer_class = RunSerializer

    @extend_schema(parameters=[OpenApiParameter("team", int)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return EvalRun.objects.none()
        team = self.request.query_params.get("team")
        team_id = parse_whole_number(team) if team else None
        if team and team_id is None:
            raise ValidationFailed("team must be a team id (an integer).", param="team")
        return selectors.run_list(caller=get_caller(self.request), team_id=team_id)

    @extend_schema(request=RunCreateInput, responses={201: RunSerializer})
    def post(self, request: Request) -> Response:
        data = validated(RunCreateInput, request)
        target = data["target"]
        run = services.eval_run_create(
            caller=get_caller(request),
            dataset_id=data["dataset"],
            dataset_version=data["dataset_version"],
            target=services.TargetRequest(
                kind=target["kind"],
                prompt=target["prompt"],
                label=target["label"],
                version=target["version"],
                model=target["model"],
                params=target["params"],
                column=target["column"],
            ),
            scorers=[
                services.ScorerRequest(
                    scorer_id=entry["scorer"],
                    version=entry["version"],
                    kind=entry["kind"],
                    config=entry["config"],
                    name=entry["name"],
                )
                for entry in data["scorers"]
            ],
            repeats=data["repeats"],
            uses_cache=data["use_cache"],
            max_concurrency=data["max_concurrency"],
            name=data["name"],
            request=request._request,
        )
        return _run_body(request, run, status.HTTP_201_CREATED)


THRESHOLD_PARAMETER = OpenApiParameter("threshold", float, description="Pass rate at this score (0..1).")


class RunDetailView(APIView):
    @extend_schema(parameters=[THRESHOLD_PARAMETER], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, run_id: str) -> Response:
        return _run_body(request, selectors.run_get(caller=get_caller(request), run_id=run_id))


class RunCancelView(APIView):
    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, run_id: str) -> Response:
        caller = get_caller(request)
        run = services.eval_run_cancel(
            caller=caller, run=selectors.run_get(caller=caller, run_id=run_id), request=request._request
        )
        return _run_body(request, run)


class RunRetryFailedView(APIView):
    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, run_id: str) -> Response:
        caller = get_caller(request)
        run = selectors.run_get(caller=caller, run_id=run_id)
        count = services.eval_run_retry_failed(caller=caller, run=run, request=request._request)
        run.refresh_from_db()
        response = _run_body(request, run)
        response.data["retried"] = count
        return response


class ResultPagination(CursorPagination):
    ordering = "id"


class RunResultListView(generics.ListAPIView):
    serializer_class = ResultSerializer
    pagination_class = ResultPagination

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=ResultStatus.values)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return EvalResult.objects.none()
        self.run = selectors.run_get(caller=get_caller(self.request), run_id=self.kwargs["run_id"])
        wanted = self.request.query_params.get("status") or None
        if wanted is not None and wanted not in ResultStatus.values:
            raise ValidationFailed(f"status must be one of {', '.join(ResultStatus.values)}.", param="status")
        return selectors.run_results(run=self.run, status=wanted)

    def paginate_queryset(self, queryset: Any) -> Any:
        page = super().paginate_queryset(queryset)
        return selectors.results_masked_for(caller=get_caller(self.request), run=self.run, results=page or [])
