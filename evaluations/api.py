"""REST API for datasets and scorers (thin: validate, call a service or selector, serialize)."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import get_caller
from core.api.pagination import CursorPagination
from core.api.serializers import ChoiceField, ClearanceField, IdField, StrictSerializer, validated
from core.dates import MomentField
from core.errors import PayloadTooLarge, ValidationFailed
from core.ids import parse_whole_number
from evaluations import limits, selectors, services
from evaluations.items import parse_item
from evaluations.models import Dataset, DatasetItem, DatasetVersion, ScorerConfig
from evaluations.permissions import VIEW_SCORER
from evaluations.scorers import SPECS, Example
from evaluations.scorers.base import ScorerError
from evaluations.types import ScorerKind
from observability.selectors import CallFilters

VERSION_PARAMETER = OpenApiParameter("version", int, description="A dataset version; the current one when absent.")

# Output ---------------------------------------------------------------------------


class DatasetSerializer(serializers.ModelSerializer):
    """A dataset; above the viewer's clearance (context `caller`) its description and schema are null."""

    team = serializers.IntegerField(source="team_id")
    classification = ClearanceField(read_only=True)
    is_masked = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            "id",
            "team",
            "name",
            "description",
            "classification",
            "is_masked",
            "item_schema",
            "current_version",
            "item_count",
            "is_archived",
            "created_at",
            "updated_at",
        ]

    def get_is_masked(self, dataset: Dataset) -> bool:
        return not selectors.dataset_is_visible(caller=self.context["caller"], dataset=dataset)

    def to_representation(self, instance: Dataset) -> dict[str, Any]:
        body = dict(super().to_representation(instance))
        if body["is_masked"]:
            body["description"] = None
            body["item_schema"] = None
        return body


class VersionSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="number")

    class Meta:
        ref_name = "DatasetVersion"  # prompts.api has a VersionSerializer too
        model = DatasetVersion
        fields = [
            "version",
            "created_at",
            "author_label",
            "message",
            "item_count",
            "added_count",
            "changed_count",
            "removed_count",
        ]


class ItemSerializer(serializers.ModelSerializer):
    """An item (masked by selectors.items_masked_for: content null, is_masked true)."""

    classification = ClearanceField(read_only=True)
    is_masked = serializers.SerializerMethodField()
    provenance = serializers.SerializerMethodField()

    class Meta:
        model = DatasetItem
        fields = [
            "key",
            "input",
            "expected_output",
            "expected_facts",
            "context",
            "tags",
            "metadata",
            "classification",
            "is_masked",
            "added_in_version",
            "removed_in_version",
            "provenance",
        ]

    def get_is_masked(self, item: DatasetItem) -> bool:
        return bool(getattr(item, "is_masked", False))

    def get_provenance(self, item: DatasetItem) -> dict[str, Any]:
        return selectors.item_provenance(item)


class ScorerConfigSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id")
    version = serializers.IntegerField(source="current_version")
    config = serializers.SerializerMethodField()
    scorer_version = serializers.SerializerMethodField()

    class Meta:
        model = ScorerConfig
        fields = [
            "id",
            "team",
            "name",
            "kind",
            "description",
            "version",
            "config",
            "scorer_version",
            "created_at",
            "updated_at",
        ]

    def get_config(self, scorer: ScorerConfig) -> dict[str, Any]:
        return selectors.scorer_version_get(scorer=scorer).config

    def get_scorer_version(self, scorer: ScorerConfig) -> str:
        return SPECS[scorer.kind].version


def _builtin(kind: str) -> dict[str, Any]:
    spec = SPECS[kind]
    return {
        "kind": kind,
        "version": spec.version,
        "description": spec.description,
        "default_threshold": spec.default_threshold,
        "needs": list(spec.needs),
        "config_schema": spec.config_schema,
    }


# Input ----------------------------------------------------------------------------


class DatasetCreateInput(StrictSerializer):
    team = IdField(required=False)
    name = serializers.CharField(max_length=limits.MAX_NAME_CHARS)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=limits.MAX_DESCRIPTION_CHARS
    )
    classification = ClearanceField(required=False, default="internal")
    item_schema = serializers.JSONField(required=False, default=None)


class DatasetUpdateInput(StrictSerializer):
    name = serializers.CharField(required=False, max_length=limits.MAX_NAME_CHARS)
    description = serializers.CharField(required=False, allow_blank=True, max_length=limits.MAX_DESCRIPTION_CHARS)
    classification = ClearanceField(required=False)
    item_schema = serializers.JSONField(required=False)


class ItemsAddInput(StrictSerializer):
    items = serializers.ListField(child=serializers.JSONField(), min_length=1, max_length=limits.MAX_ITEMS_PER_BATCH)
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class ItemsBatchInput(StrictSerializer):
    add = serializers.ListField(
        child=serializers.JSONField(), required=False, default=list, max_length=limits.MAX_ITEMS_PER_BATCH
    )
    update = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)  # type: ignore[assignment]  # wire name; DRF pops declared fields
    remove = serializers.ListField(
        child=serializers.UUIDField(), required=False, default=list, max_length=limits.MAX_ITEMS_PER_BATCH
    )
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class ItemInput(StrictSerializer):
    """One item's wire shape, for the schema: the view parses the body with
    evaluations.items.parse_item, which refuses unknown fields and names the field to fix."""

    input = serializers.JSONField(help_text='{"messages": [...]}, {"variables": {...}} or a text.')
    expected_output = serializers.CharField(required=False, allow_null=True)
    expected_facts = serializers.ListField(child=serializers.CharField(), required=False)
    context = serializers.ListField(child=serializers.JSONField(), required=False)  # type: ignore[assignment]  # wire name; DRF pops declared fields
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    metadata = serializers.DictField(required=False)
    classification = ClearanceField(required=False)


class ImportInput(StrictSerializer):
    """The multipart form of an import (the view names a missing or oversized file first)."""

    file = serializers.FileField()
    format = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="jsonl or csv; empty: from the file's name."
    )
    message = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class MessageInput(StrictSerializer):
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class CallFilterInput(StrictSerializer):
    application = IdField(required=False)
    model = serializers.CharField(required=False, max_length=256, default="")
    status = serializers.CharField(required=False, max_length=16, default="")
    prompt = serializers.CharField(required=False, max_length=256, default="")
    end_user = serializers.CharField(required=False, max_length=256, default="")
    created_from = MomentField(required=False, default=None)
    created_to = MomentField(required=False, default=None)


class FromCallsInput(StrictSerializer):
    call_ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, default=list, max_length=limits.MAX_ITEMS_PER_BATCH
    )
    filter = CallFilterInput(required=False, default=None)
    limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=limits.MAX_ITEMS_PER_BATCH)
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class ScorerCreateInput(StrictSerializer):
    team = IdField(required=False)
    name = serializers.CharField(max_length=limits.MAX_NAME_CHARS)
    kind = ChoiceField(choices=ScorerKind.choices)
    config = serializers.JSONField(required=False, default=dict)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=limits.MAX_DESCRIPTION_CHARS
    )


class ScorerUpdateInput(StrictSerializer):
    config = serializers.JSONField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=limits.MAX_DESCRIPTION_CHARS)


class ExampleInput(StrictSerializer):
    input = serializers.JSONField(required=False, default=None)
    output = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=limits.MAX_SCORED_OUTPUT_CHARS)
    expected_output = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        trim_whitespace=False,
        default=None,
        max_length=limits.MAX_TEXT_CHARS,
    )
    expected_facts = serializers.ListField(
        child=serializers.CharField(max_length=limits.MAX_FACT_CHARS),
        required=False,
        default=list,
        max_length=limits.MAX_FACTS,
    )
    context = serializers.ListField(  # type: ignore[assignment]  # wire name; DRF pops declared fields
        child=serializers.JSONField(), required=False, default=list, max_length=limits.MAX_DOCUMENTS
    )


class ScoreTestInput(ExampleInput):
    kind = ChoiceField(choices=ScorerKind.choices)
    config = serializers.JSONField(required=False, default=dict)
    team = IdField(required=False)


class BrandPolicyCreateInput(StrictSerializer):
    team = IdField(required=False)
    name = serializers.CharField(max_length=limits.MAX_NAME_CHARS)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=limits.MAX_DESCRIPTION_CHARS
    )
    rules = serializers.JSONField()


class BrandPolicyUpdateInput(StrictSerializer):
    rules = serializers.JSONField()


# Helpers --------------------------------------------------------------------------


def _team_id(request: Request, data: dict[str, Any], noun: str) -> int:
    caller = get_caller(request)
    team_id = data.pop("team", None)
    if team_id is not None:
        return int(team_id)
    if len(caller.team_ids) != 1:
        raise ValidationFailed(
            f"You belong to several teams (or none): pass team, the id of the team that owns the {noun}.", param="team"
        )
    return caller.team_ids[0]


def _query_team(request: Request) -> int | None:
    team = request.query_params.get("team")
    if team is None:
        return None
    team_id = parse_whole_number(team)
    if team_id is None:
        raise ValidationFailed("team must be a team id (an integer).", param="team")
    return team_id


def _dataset(request: Request, dataset_id: Any) -> Dataset:
    return selectors.dataset_get(caller=get_caller(request), dataset_id=dataset_id)


def _dataset_body(request: Request, dataset: Dataset, code: int = status.HTTP_200_OK) -> Response:
    return Response(DatasetSerializer(dataset, context={"caller": get_caller(request)}).data, status=code)


def _new_items(raw_items: list[Any], prefix: str) -> list[services.NewItem]:
    items = []
    for index, raw in enumerate(raw_items):
        try:
            items.append(services.NewItem(data=parse_item(raw), where=f"{prefix}[{index}]"))
        except ValidationFailed as error:
            raise ValidationFailed(
                f"{prefix}[{index}].{error.message}", param=f"{prefix}[{index}].{error.param}"
            ) from None
    return items


def _version_body(version: DatasetVersion) -> dict[str, Any]:
    return VersionSerializer(version).data


# Datasets -------------------------------------------------------------------------


class DatasetListView(generics.ListAPIView):
    serializer_class = DatasetSerializer

    @extend_schema(parameters=[OpenApiParameter("team", int), OpenApiParameter("archived", bool)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        return selectors.dataset_list(
            caller=get_caller(self.request),
            team_id=_query_team(self.request),
            include_archived=self.request.query_params.get("archived") == "true",
        )

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "caller": get_caller(self.request)}

    @extend_schema(request=DatasetCreateInput, responses={201: DatasetSerializer})
    def post(self, request: Request) -> Response:
        data = validated(DatasetCreateInput, request)
        team_id = _team_id(request, data, "dataset")
        dataset = services.dataset_create(caller=get_caller(request), team_id=team_id, request=request._request, **data)
        return _dataset_body(request, dataset, status.HTTP_201_CREATED)


class DatasetDetailView(APIView):
    @extend_schema(responses={200: DatasetSerializer})
    def get(self, request: Request, dataset_id: str) -> Response:
        return _dataset_body(request, _dataset(request, dataset_id))

    @extend_schema(request=DatasetUpdateInput, responses={200: DatasetSerializer})
    def patch(self, request: Request, dataset_id: str) -> Response:
        dataset = _dataset(request, dataset_id)
        data = validated(DatasetUpdateInput, request)
        if "item_schema" in data and data["item_schema"] is None:
            data["item_schema"] = {}
        dataset = services.dataset_update(caller=get_caller(request), dataset=dataset, request=request._request, **data)
        return _dataset_body(request, dataset)


class DatasetArchiveView(APIView):
    @extend_schema(request=None, responses={200: DatasetSerializer})
    def post(self, request: Request, dataset_id: str) -> Response:
        dataset = services.dataset_archive(
            caller=get_caller(request), dataset=_dataset(request, dataset_id), request=request._request
        )
        return _dataset_body(request, dataset)


class VersionListView(APIView):
    @extend_schema(responses={200: VersionSerializer(many=True)})
    def get(self, request: Request, dataset_id: str) -> Response:
        dataset = _dataset(request, dataset_id)
        return Response(VersionSerializer(selectors.version_list(dataset=dataset)[:1000], many=True).data)


class ItemPagination(CursorPagination):
    ordering = "id"  # the order items were added, stable across versions


class ItemListView(generics.ListAPIView):
    serializer_class = ItemSerializer
    pagination_class = ItemPagination

    @extend_schema(parameters=[VERSION_PARAMETER])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return DatasetItem.objects.none()
        dataset = _dataset(self.request, self.kwargs["dataset_id"])
        number = selectors.version_number(dataset, self.request.query_params.get("version"))
        self.dataset = dataset
        return selectors.items_at(dataset=dataset, version=number)

    def paginate_queryset(self, queryset: Any) -> Any:
        page = super().paginate_queryset(queryset)
        return selectors.items_masked_for(caller=get_caller(self.request), dataset=self.dataset, items=page or [])

    @extend_schema(request=ItemsAddInput, responses={201: VersionSerializer})
    def post(self, request: Request, dataset_id: str) -> Response:
        dataset = _dataset(request, dataset_id)
        data = validated(ItemsAddInput, request)
        version = services.dataset_items_change(
            caller=get_caller(request),
            dataset=dataset,
            add=_new_items(data["items"], "items"),
            message=data["message"],
            request=request._request,
        )
        return Response(_version_body(version), status=status.HTTP_201_CREATED)


class ItemBatchView(APIView):
    @extend_schema(request=ItemsBatchInput, responses={201: VersionSerializer})
    def post(self, request: Request, dataset_id: str) -> Response:
        dataset = _dataset(request, dataset_id)
        data = validated(ItemsBatchInput, request)
        if len(data["update"]) > limits.MAX_ITEMS_PER_BATCH:
            raise ValidationFailed(f"update: at most {limits.MAX_ITEMS_PER_BATCH:,} items.", param="update")
        update = {}
        for key, raw in data["update"].items():
            parsed_key = selectors.parse_item_key(key, param="update")
            update[parsed_key] = _new_items([raw], f"update[{key}]")[0]
        version = services.dataset_items_change(
            caller=get_caller(request),
            dataset=dataset,
            add=_new_items(data["add"], "add"),
            update=update,
            remove=data["remove"],
            message=data["message"],
            request=request._request,
        )
        return Response(_version_body(version), status=status.HTTP_201_CREATED)


class ItemDetailView(APIView):
    @extend_schema(parameters=[VERSION_PARAMETER], responses={200: ItemSerializer})
    def get(self, request: Request, dataset_id: str, key: str) -> Response:
        dataset = _dataset(request, dataset_id)
        number = selectors.version_number(dataset, request.query_params.get("version"))
        item = selectors.item_get(dataset=dataset, key=key, version=number)
        (item,) = selectors.items_masked_for(caller=get_caller(request), dataset=dataset, items=[item])
        return Response(ItemSerializer(item).data)

    @extend_schema(request=ItemInput, responses={201: VersionSerializer})
    def put(self, request: Request, dataset_id: str, key: str) -> Response:
        dataset = _dataset(request, dataset_id)
        parsed = selectors.parse_item_key(key)
        (item,) = _new_items([request.data], "item")
        version = services.dataset_items_change(
            caller=get_caller(request), dataset=dataset, update={parsed: item}, request=request._request
        )
        return Response(_version_body(version), status=status.HTTP_201_CREATED)

    @extend_schema(responses={201: VersionSerializer})
    def delete(self, request: Request, dataset_id: str, key: str) -> Response:
        dataset = _dataset(request, dataset_id)
        parsed = selectors.parse_item_key(key)
        version = services.dataset_items_change(
            caller=get_caller(request), dataset=dataset, remove=[parsed], request=request._request
        )
        return Response(_version_body(version), status=status.HTTP_201_CREATED)


class ImportView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(request=ImportInput, responses={201: VersionSerializer})
    def post(self, request: Request, dataset_id: str) -> Response:
        dataset = _dataset(request, dataset_id)
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationFailed("Send the file as multipart form data in the field 'file'.", param="file")
        if upload.size is not None and upload.size > limits.MAX_IMPORT_BYTES:
            raise PayloadTooLarge(
                f"The file has {upload.size:,} bytes; at most {limits.MAX_IMPORT_BYTES:,} may be imported at once. "
                "Split it.",
                param="file",
            )
        data = validated(ImportInput, request)
        version = services.dataset_import(
            caller=get_caller(request),
            dataset=dataset,
            file_name=upload.name or "upload",
            data=upload.read(limits.MAX_IMPORT_BYTES + 1),
            file_format=data["format"] or None,
            message=data["message"][:500],
            request=request._request,
        )
        return Response(_version_body(version), status=status.HTTP_201_CREATED)


class ExportView(APIView):
    @extend_schema(parameters=[VERSION_PARAMETER], responses={(200, "application/x-ndjson"): OpenApiTypes.STR})
    def get(self, request: Request, dataset_id: str) -> StreamingHttpResponse:
        dataset = _dataset(request, dataset_id)
        number = selectors.version_number(dataset, request.query_params.get("version"))
        lines = selectors.dataset_export_lines(caller=get_caller(request), dataset=dataset, version=number)
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="dataset-{dataset.pk}-v{number}.jsonl"'
        return response


class FromCallsView(APIView):
    @extend_schema(request=FromCallsInput, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, dataset_id: str) -> Response:
        dataset = _dataset(request, dataset_id)
        data = validated(FromCallsInput, request)
        raw_filter = data["filter"]
        filters = None
        if raw_filter is not None:
            filters = CallFilters(
                application_id=raw_filter.get("application"),
                model=raw_filter["model"],
                status=raw_filter["status"],
                prompt=raw_filter["prompt"],
                end_user=raw_filter["end_user"],
                created_from=raw_filter["created_from"],
                created_to=raw_filter["created_to"],
            )
        result = services.dataset_add_from_calls(
            caller=get_caller(request),
            dataset=dataset,
            call_ids=data["call_ids"],
            filters=filters,
            limit=data["limit"],
            message=data["message"],
            request=request._request,
        )
        body = {
            "version": _version_body(result.version) if result.version else None,
            "added": result.added,
            "skipped_above_clearance": result.skipped_above_clearance,
            "skipped_already_present": result.skipped_already_present,
            "skipped_invalid": result.skipped_invalid,
        }
        return Response(body, status=status.HTTP_201_CREATED if result.version else status.HTTP_200_OK)


# Scorers --------------------------------------------------------------------------


def _example(data: dict[str, Any]) -> Example:
    documents = []
    for index, document in enumerate(data["context"]):
        if not isinstance(document, dict) or not isinstance(document.get("text"), str):
            raise ValidationFailed(f'context[{index}]: must be {{"id": ..., "text": ...}}.', param=f"context[{index}]")
        documents.append(
            {"id": str(document.get("id", index + 1))[:200], "text": document["text"][: limits.MAX_TEXT_CHARS]}
        )
    return Example.build(
        input=data["input"],
        output=data["output"],
        expected=data["expected_output"],
        facts=data["expected_facts"],
        documents=documents,
    )


def _score_body(result: Any) -> Response:
    if isinstance(result, ScorerError):
        return Response({"error": result.message, "score": None})
    return Response({"error": None, "score": result.as_dict()})


class ScorerListView(APIView):
    @extend_schema(
        operation_id="v1_scorers_list", parameters=[OpenApiParameter("team", int)], responses={200: OpenApiTypes.OBJECT}
    )
    def get(self, request: Request) -> Response:
        caller = get_caller(request)
        configured = selectors.scorer_list(caller=caller, team_id=_query_team(request))
        return Response(
            {
                "builtin": [_builtin(kind) for kind in SPECS],
                "configured": ScorerConfigSerializer(
                    configured[: limits.MAX_SCORER_CONFIGS_PER_TEAM * 4], many=True
                ).data,
            }
        )

    @extend_schema(request=ScorerCreateInput, responses={201: ScorerConfigSerializer})
    def post(self, request: Request) -> Response:
        data = validated(ScorerCreateInput, request)
        team_id = _team_id(request, data, "scorer")
        scorer = services.scorer_config_create(
            caller=get_caller(request), team_id=team_id, request=request._request, **data
        )
        return Response(ScorerConfigSerializer(scorer).data, status=status.HTTP_201_CREATED)


class ScorerDetailView(APIView):
    @extend_schema(responses={200: ScorerConfigSerializer})
    def get(self, request: Request, scorer_id: str) -> Response:
        scorer = selectors.scorer_get(caller=get_caller(request), scorer_id=scorer_id)
        return Response(ScorerConfigSerializer(scorer).data)

    @extend_schema(request=ScorerUpdateInput, responses={200: ScorerConfigSerializer})
    def patch(self, request: Request, scorer_id: str) -> Response:
        scorer = selectors.scorer_get(caller=get_caller(request), scorer_id=scorer_id)
        data = validated(ScorerUpdateInput, request)
        scorer = services.scorer_config_update(
            caller=get_caller(request), scorer=scorer, request=request._request, **data
        )
        return Response(ScorerConfigSerializer(scorer).data)


class ScorerScoreView(APIView):
    @extend_schema(request=ExampleInput, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, scorer_id: str) -> Response:
        scorer = selectors.scorer_get(caller=get_caller(request), scorer_id=scorer_id)
        example = _example(validated(ExampleInput, request))
        instance = services.scorer_for_version(selectors.scorer_version_get(scorer=scorer))
        return _score_body(services.score_example(scorer=instance, example=example))


class ScorerTestView(APIView):
    """Score one example with a built-in kind and an unsaved configuration."""

    @extend_schema(request=ScoreTestInput, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        caller = get_caller(request)
        data = validated(ScoreTestInput, request)
        team_id = _team_id(request, data, "brand policy")
        caller.require_permission(VIEW_SCORER, team_id=team_id, action="test scorers")
        instance = services.scorer_for_config(team_id=team_id, kind=data["kind"], config=data["config"])
        return _score_body(services.score_example(scorer=instance, example=_example(data)))


# Brand policies -------------------------------------------------------------------


def _policy_body(policy: Any) -> dict[str, Any]:
    version = selectors.brand_policy_version_get(policy=policy)
    return {
        "id": policy.pk,
        "team": policy.team_id,
        "name": policy.name,
        "description": policy.description,
        "version": policy.current_version,
        "rules": version.rules,
        "created_at": policy.created_at,
        "updated_at": policy.updated_at,
    }


class BrandPolicyListView(APIView):
    @extend_schema(
        operation_id="v1_brand_policies_list",
        parameters=[OpenApiParameter("team", int)],
        responses={200: {"type": "array", "items": {"type": "object"}}},
    )
    def get(self, request: Request) -> Response:
        policies = selectors.brand_policy_list(caller=get_caller(request), team_id=_query_team(request))
        return Response([_policy_body(policy) for policy in policies[: limits.MAX_BRAND_POLICIES_PER_TEAM * 4]])

    @extend_schema(request=BrandPolicyCreateInput, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        data = validated(BrandPolicyCreateInput, request)
        team_id = _team_id(request, data, "brand policy")
        policy = services.brand_policy_create(
            caller=get_caller(request), team_id=team_id, request=request._request, **data
        )
        return Response(_policy_body(policy), status=status.HTTP_201_CREATED)


class BrandPolicyDetailView(APIView):
    @extend_schema(parameters=[OpenApiParameter("version", int)], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, policy_id: str) -> Response:
        policy = selectors.brand_policy_get(caller=get_caller(request), policy_id=policy_id)
        body = _policy_body(policy)
        raw = request.query_params.get("version")
        if raw:
            number = parse_whole_number(raw, maximum=2**31 - 1)
            if not number:
                raise ValidationFailed("version must be a whole number from 1.", param="version")
            version = selectors.brand_policy_version_get(policy=policy, number=number)
            body.update(version=version.number, rules=version.rules)
        return Response(body)

    @extend_schema(request=BrandPolicyUpdateInput, responses={200: OpenApiTypes.OBJECT})
    def patch(self, request: Request, policy_id: str) -> Response:
        policy = selectors.brand_policy_get(caller=get_caller(request), policy_id=policy_id)
        data = validated(BrandPolicyUpdateInput, request)
        services.brand_policy_update(
            caller=get_caller(request), policy=policy, rules=data["rules"], request=request._request
        )
        return Response(_policy_body(policy))
