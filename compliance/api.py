"""REST API of the audit trail: events, verification, streamed export, export jobs, retention."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors as account_selectors
from accounts.authentication import get_caller
from compliance import selectors, services
from compliance.export import EXPORT_COLUMNS
from compliance.models import AuditEvent, AuditExport, ExportFormat, ExportStatus
from core.api.serializers import ChoiceField, IdField, StrictSerializer, validated
from core.dates import MomentField
from core.errors import NotFound, ValidationFailed

FILTER_PARAMETERS = [
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="events at or after this time (ISO 8601)"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="events before this time (ISO 8601)"),
    OpenApiParameter("team", OpenApiTypes.INT),
    OpenApiParameter("application", OpenApiTypes.INT),
    OpenApiParameter("actor_user", OpenApiTypes.INT, description="id of the acting user"),
    OpenApiParameter("actor_api_key", OpenApiTypes.INT, description="id of the acting API key"),
    OpenApiParameter("actor", OpenApiTypes.STR, description="part of the actor's label"),
    OpenApiParameter("action", OpenApiTypes.STR, description="exact action, or a prefix ending in '*'"),
]
MIME_TYPES: dict[str, str] = {ExportFormat.JSONL: "application/x-ndjson", ExportFormat.CSV: "text/csv; charset=utf-8"}


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", *EXPORT_COLUMNS, "sealed_at"]


class AuditExportSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = AuditExport
        fields = [
            "id",
            "team_id",
            "exporter_label",
            "format",
            "filters",
            "is_streamed",
            "status",
            "total_rows",
            "row_count",
            "progress_percent",
            "manifest",
            "error",
            "created_at",
            "finished_at",
            "download_url",
        ]

    def get_download_url(self, audit_export: AuditExport) -> str | None:
        if audit_export.is_streamed or audit_export.status != ExportStatus.DONE:
            return None
        return f"/api/v1/audit/exports/{audit_export.id}/download/"


class VerificationSerializer(serializers.Serializer):
    is_intact = serializers.BooleanField()
    summary = serializers.CharField()
    first_broken_sequence = serializers.IntegerField(allow_null=True)
    problem = serializers.CharField(allow_null=True)
    problems = serializers.ListField(child=serializers.CharField())
    events_verified = serializers.IntegerField()
    pending_events = serializers.IntegerField()
    head_sequence = serializers.IntegerField()
    head_hash = serializers.CharField()
    checkpoints_verified = serializers.IntegerField()
    verified_at = serializers.CharField()


class ExportJobInput(StrictSerializer):
    format = ChoiceField(choices=ExportFormat.values, default=ExportFormat.JSONL)
    team = IdField()
    since = MomentField(required=False)
    until = MomentField(required=False)
    application = IdField(required=False)
    actor_user = IdField(required=False)
    actor_api_key = IdField(required=False)
    actor = serializers.CharField(required=False, max_length=200)
    action = serializers.CharField(required=False, max_length=200)


class RetentionSerializer(StrictSerializer):
    team_id = serializers.IntegerField(read_only=True)
    call_content_days = serializers.IntegerField(allow_null=True, min_value=1, max_value=services.MAX_RETENTION_DAYS)


class AuditEventListView(generics.ListAPIView):
    serializer_class = AuditEventSerializer

    def get_queryset(self) -> QuerySet[AuditEvent]:
        if getattr(self, "swagger_fake_view", False):
            return AuditEvent.objects.none()
        params = selectors.single_values(self.request.query_params)
        audit_filter = selectors.parse_filters(params, allowed_extra=("cursor", "limit"))
        return selectors.audit_event_list(caller=get_caller(self.request), audit_filter=audit_filter)

    @extend_schema(parameters=FILTER_PARAMETERS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class AuditVerifyView(APIView):
    @extend_schema(responses=VerificationSerializer)
    def get(self, request: Request) -> Response:
        """Verify the whole chain and the signed checkpoints; report the first broken link (200 either way)."""
        caller = get_caller(request)
        report = services.audit_verify(caller=caller, request=request._request)
        return Response(selectors.audit_verification_for(caller=caller, report=report))


class IgnoreFormatParameter(DefaultContentNegotiation):
    """`?format=jsonl|csv` names the export format here, not a DRF renderer; errors stay JSON."""

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


class AuditExportStreamView(APIView):
    content_negotiation_class = IgnoreFormatParameter

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format", OpenApiTypes.STR, enum=ExportFormat.values, description="jsonl (default) or csv"
            ),
            *FILTER_PARAMETERS,
        ],
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR, (200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        """Stream sealed events (chain order) as JSONL or CSV. JSONL ends with a signed manifest line;
        for either format the manifest is at the export's URL (header X-Audit-Export-Id) once the stream ends."""
        params = selectors.single_values(request.query_params)
        export_format = selectors.parse_format(params.pop("format", None))
        audit_filter = selectors.parse_filters(params)
        audit_export, stream = services.audit_export_stream(
            caller=get_caller(request), audit_filter=audit_filter, export_format=export_format, request=request._request
        )
        response = StreamingHttpResponse(stream, content_type=MIME_TYPES[export_format])
        response["Content-Disposition"] = f'attachment; filename="{audit_export.filename}"'
        response["X-Audit-Export-Id"] = str(audit_export.id)
        response["Link"] = f'</api/v1/audit/exports/{audit_export.id}/>; rel="manifest"'
        return response


class AuditExportListView(generics.ListAPIView):
    serializer_class = AuditExportSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[AuditExport]:
        if getattr(self, "swagger_fake_view", False):
            return AuditExport.objects.none()
        return selectors.audit_export_list(caller=get_caller(self.request)).order_by("-created_at")[:100]

    @extend_schema(request=ExportJobInput, responses={202: AuditExportSerializer})
    def post(self, request: Request) -> Response:
        """Queue a file export (for large exports); poll the export for progress and the download link."""
        data = validated(ExportJobInput, request)
        export_format = data.pop("format")
        audit_filter = selectors.parse_filters(
            {key: value.isoformat() if hasattr(value, "isoformat") else str(value) for key, value in data.items()}
        )
        audit_export = services.audit_export_job_create(
            caller=get_caller(request), audit_filter=audit_filter, export_format=export_format, request=request._request
        )
        return Response(AuditExportSerializer(audit_export).data, status=status.HTTP_202_ACCEPTED)


class AuditExportDetailView(APIView):
    @extend_schema(responses=AuditExportSerializer)
    def get(self, request: Request, export_id: str) -> Response:
        audit_export = selectors.audit_export_get(caller=get_caller(request), export_id=export_id)
        return Response(AuditExportSerializer(audit_export).data)


class AuditExportDownloadView(APIView):
    content_negotiation_class = IgnoreFormatParameter

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, export_id: str) -> FileResponse:
        audit_export = selectors.audit_export_get(caller=get_caller(request), export_id=export_id)
        return export_file_response(audit_export)


def export_file_response(audit_export: AuditExport) -> FileResponse:
    if audit_export.is_streamed:
        raise NotFound("This export was streamed, not written to a file; run it again or queue an export job.")
    if audit_export.status != ExportStatus.DONE:
        raise ValidationFailed(
            f"The export is {audit_export.status} ({audit_export.progress_percent}%); download it when it is done.",
            code="export_not_ready",
        )
    path = services.export_file_path(audit_export)
    if not path.exists():
        raise NotFound("The export file is no longer on disk; queue the export again.")
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=audit_export.filename,
        content_type=MIME_TYPES[audit_export.format],
    )


class RetentionView(APIView):
    @extend_schema(responses=RetentionSerializer)
    def get(self, request: Request, team_id: int) -> Response:
        caller = get_caller(request)
        team = account_selectors.team_get(caller=caller, team_id=team_id)
        policy = selectors.retention_policy_get(caller=caller, team=team)
        return Response({"team_id": team.id, "call_content_days": policy.call_content_days})

    @extend_schema(request=RetentionSerializer, responses=RetentionSerializer)
    def put(self, request: Request, team_id: int) -> Response:
        caller = get_caller(request)
        team = account_selectors.team_get(caller=caller, team_id=team_id)
        policy = services.retention_policy_set(
            caller=caller,
            team=team,
            call_content_days=validated(RetentionSerializer, request)["call_content_days"],
            request=request._request,
        )
        return Response({"team_id": team.id, "call_content_days": policy.call_content_days})
