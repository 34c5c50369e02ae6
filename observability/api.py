"""REST API for call records: list (filters, cursor pages), one call's whole trace, and ingestion."""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import get_caller
from core.api.serializers import MAX_INTEGER, ChoiceField, ClearanceField, IdField, StrictSerializer
from core.dates import MomentField
from observability import selectors, services
from observability.filters import parse_call_filters
from observability.models import Call, CallStatus

MAX_FUTURE_SKEW = datetime.timedelta(minutes=5)
_STATUSES = ", ".join(CallStatus.values)


# A plain string in the schema: an enum named "status" here would collide with other apps' "status"
# enums (drf-spectacular warns); the accepted values are in the description instead.
@extend_schema_field({"type": "string", "description": f"One of: {_STATUSES}."})
class CallStatusField(ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=CallStatus.choices, **kwargs)


# Output ---------------------------------------------------------------------------


class CallSummarySerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id")
    application = serializers.IntegerField(source="application_id")
    api_key = serializers.IntegerField(source="api_key_id", allow_null=True)
    status = CallStatusField(read_only=True)
    classification = ClearanceField(
        read_only=True, help_text="The highest classification of what went into the call (prompt, documents, content)."
    )
    is_masked = serializers.BooleanField(
        read_only=True, help_text=f"Classified above your clearance: every text is shown as '{selectors.MASKED_TEXT}'."
    )

    class Meta:
        model = Call
        # The list's columns are the selector's, foreign keys named without their `_id`.
        fields = [
            *(
                name.removesuffix("_id") if name.endswith("_id") and name != "client_call_id" else name
                for name in selectors.SUMMARY_FIELDS
            ),
            "is_masked",
        ]


class CallDetailSerializer(CallSummarySerializer):
    """The whole trace, masked (`is_masked`) when classified above the viewer's clearance, with
    classified spans redacted otherwise."""

    request_messages = serializers.SerializerMethodField()
    response_text = serializers.SerializerMethodField()
    viewer_clearance = serializers.SerializerMethodField()

    class Meta(CallSummarySerializer.Meta):
        fields = [
            *CallSummarySerializer.Meta.fields,
            "prompt_id",
            "prompt_version_id",
            "experiment_id",
            "operation",
            "route_reason",
            "request_messages",
            "request_params",
            "response_text",
            "response_id",
            "error_message",
            "attempts",
            "context_report",
            "guardrail_findings",
            "viewer_clearance",
        ]

    def _view(self) -> selectors.CallView:
        view_of_call: selectors.CallView = self.context["view_of_call"]  # set by CallDetailView
        return view_of_call

    def get_request_messages(self, call: Call) -> list[Any]:
        return self._view().request_messages

    def get_response_text(self, call: Call) -> str:
        return self._view().response_text

    def get_viewer_clearance(self, call: Call) -> str:
        return ClearanceField().to_representation(self._view().viewer_clearance)


class CallIngestResultSerializer(serializers.Serializer):
    created = serializers.ListField(child=serializers.DictField())
    existing = serializers.ListField(child=serializers.DictField())


# Input ----------------------------------------------------------------------------


class UsageInput(StrictSerializer):
    prompt_tokens = serializers.IntegerField(min_value=0, max_value=2_000_000_000, default=0)
    completion_tokens = serializers.IntegerField(min_value=0, max_value=2_000_000_000, default=0)
    cached_tokens = serializers.IntegerField(min_value=0, max_value=2_000_000_000, default=0)
    # accepted as the SDK sends it (the sum of the two above); derived, never stored
    total_tokens = serializers.IntegerField(min_value=0, max_value=4_000_000_000, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["cached_tokens"] > attrs["prompt_tokens"]:
            raise serializers.ValidationError(
                {"cached_tokens": "cached_tokens cannot exceed prompt_tokens (cached tokens are part of the input)."}
            )
        return attrs


class PromptRefInput(StrictSerializer):
    name = serializers.CharField(max_length=200)
    version = serializers.IntegerField(min_value=1, max_value=MAX_INTEGER, required=False, allow_null=True)


class MessageInput(serializers.DictField):
    """One chat message: an object with a string `role` (content as the OpenAI protocol allows)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        message = super().to_internal_value(data)
        if not isinstance(message.get("role"), str) or not message["role"]:
            raise serializers.ValidationError("Each message needs a 'role' (system, user, assistant or tool).")
        return message


class CallRecordInput(StrictSerializer):
    id = serializers.CharField(max_length=128, help_text="Your id for the call; a second send of it is ignored.")
    model = serializers.CharField(max_length=200)
    response_model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    provider = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    messages = serializers.ListField(child=MessageInput(), max_length=10_000, default=list)
    params = serializers.DictField(required=False, default=dict)
    response = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    finish_reason = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    stream = serializers.BooleanField(required=False, default=False)
    usage = UsageInput(required=False)
    cost_usd = serializers.DecimalField(max_digits=14, decimal_places=8, min_value=0, required=False)
    latency_ms = serializers.FloatField(min_value=0, required=False, allow_null=True)
    time_to_first_token_ms = serializers.FloatField(min_value=0, required=False, allow_null=True)
    status = CallStatusField(default=CallStatus.SUCCESS)
    error_type = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    error_message = serializers.CharField(required=False, allow_blank=True, default="")
    end_user = serializers.CharField(max_length=256, required=False, allow_blank=True, default="")
    prompt = PromptRefInput(required=False)
    metadata = serializers.DictField(required=False, default=dict)
    created_at = MomentField(required=False)
    classification = ClearanceField(
        required=False,
        help_text="The highest classification of what went into the call (default public); "
        "your team's classification rules on the content can only raise it.",
    )

    def validate_created_at(self, value: datetime.datetime) -> datetime.datetime:
        if value > timezone.now() + MAX_FUTURE_SKEW:
            raise serializers.ValidationError(
                "created_at is in the future; send when the call happened (clocks may differ by 5 minutes at most)."
            )
        return value


class CallBatchInput(StrictSerializer):
    calls = CallRecordInput(  # type: ignore[call-arg]  # many=True makes a ListSerializer, which takes max_length
        many=True,
        allow_empty=False,
        max_length=services.MAX_INGEST_BATCH,
        error_messages={
            "max_length": f"A batch holds at most {services.MAX_INGEST_BATCH} calls; split it into several requests.",
            "empty": "Send at least one call in 'calls'.",
        },
    )
    application = IdField(required=False, help_text="The application's id (signed-in users; keys act for their own).")


def _bracketed(detail: Any, path: str = "") -> dict[str, Any]:
    """Errors keyed by a path like `calls[3].usage.prompt_tokens`, pointing into the batch."""
    if isinstance(detail, list) and all(not isinstance(item, (dict, list)) for item in detail):
        return {path or "non_field_errors": detail}
    flat: dict[str, Any] = {}
    items = detail.items() if isinstance(detail, dict) else enumerate(detail)
    for key, value in items:
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            child = f"{path}[{key}]"
        elif key == "non_field_errors":
            child = path
        else:
            child = f"{path}.{key}" if path else str(key)
        if value:  # a valid item of a list has an empty error
            flat.update(_bracketed(value, child))
    return flat


# Views ----------------------------------------------------------------------------

_FILTER_PARAMETERS = [
    OpenApiParameter("application", int, description="Application id"),
    OpenApiParameter("model", str, description="Requested or served model"),
    OpenApiParameter("status", str, description=f"One of: {_STATUSES}"),
    OpenApiParameter("end_user", str),
    OpenApiParameter("prompt", str, description="Prompt name"),
    OpenApiParameter("cache_result", str),
    OpenApiParameter("from", OpenApiTypes.DATETIME, description="created_at at or after (ISO 8601)"),
    OpenApiParameter("to", OpenApiTypes.DATETIME, description="created_at at or before (ISO 8601)"),
    OpenApiParameter(
        "metadata.<key>", str, description="metadata.<key>=<value>: calls whose metadata has that value (repeatable)"
    ),
]


class CallListView(generics.ListAPIView):
    serializer_class = CallSummarySerializer
    filter_backends: list[Any] = []  # filters are parsed by observability.filters (metadata keys are dynamic)

    def get_queryset(self) -> QuerySet[Call]:
        filters = parse_call_filters(self.request.query_params)
        return selectors.call_list(caller=get_caller(self.request), filters=filters)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.get_queryset()
        page = self.paginate_queryset(queryset)
        calls = selectors.calls_masked_for(caller=get_caller(request), calls=page if page is not None else queryset)
        data = self.get_serializer(calls, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(parameters=_FILTER_PARAMETERS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=CallBatchInput,
        responses={201: CallIngestResultSerializer, 200: CallIngestResultSerializer},
        description=(
            "Record calls your application made itself: up to 1,000 per batch, idempotent by your `id`. "
            "One invalid record rejects the whole batch."
        ),
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise serializers.ValidationError("The request body must be a JSON object with a 'calls' list.")
        raw_calls = request.data.get("calls")
        if isinstance(raw_calls, list) and len(raw_calls) > services.MAX_INGEST_BATCH:
            # Refuse before validating a huge batch record by record.
            raise serializers.ValidationError(
                {"calls": f"A batch holds at most {services.MAX_INGEST_BATCH} calls; you sent {len(raw_calls)}."}
            )
        # A body nested too deeply never gets here: the API's parser refuses it
        # (core.api.parsers); storing and reading a record walk its JSON recursively.
        serializer = CallBatchInput(data=request.data)
        if not serializer.is_valid():
            raise serializers.ValidationError(_bracketed(serializer.errors))
        data = serializer.validated_data
        result = services.calls_ingest(
            caller=get_caller(request), records=data["calls"], application_id=data.get("application")
        )
        body = {
            "created": [{"id": call.client_call_id, "call_id": str(call.id)} for call in result.created],
            "existing": [{"id": client_id, "call_id": str(call_id)} for client_id, call_id in result.existing.items()],
        }
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class CallDetailView(APIView):
    @extend_schema(responses=CallDetailSerializer)
    def get(self, request: Request, call_id: str) -> Response:
        caller = get_caller(request)
        call = selectors.call_get(caller=caller, call_id=call_id)
        view_of_call = selectors.call_view(caller=caller, call=call)
        return Response(CallDetailSerializer(call, context={"request": request, "view_of_call": view_of_call}).data)
