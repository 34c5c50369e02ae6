"""REST API: guardrail policy per application, classification rules and data sources per team."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors as account_selectors
from accounts.authentication import get_caller
from compliance.guardrails import selectors, services
from compliance.guardrails.models import (
    PII_ENTITIES,
    ClassificationRule,
    DataSource,
    DetectorKind,
    GuardrailPolicy,
    InjectionAction,
    LeakAction,
    PiiAction,
)
from core.api.filters import IdFilter
from core.api.serializers import ChoiceField, ClearanceField, IdField, StrictSerializer, validated
from core.errors import ValidationFailed

# A data source's description is stored, shown and copied into the audit trail with every
# change (before and after): bounded like the other free-text fields.
DESCRIPTION_MAX_LENGTH = 2000
MAX_PATTERN_LENGTH = 500
MAX_KEYWORDS = 500
DETECTOR_FIELDS = ("kind", "entities", "pattern", "keywords")

# Output ---------------------------------------------------------------------------


class PiiPolicySerializer(serializers.Serializer):
    input = serializers.CharField()
    output = serializers.CharField()
    entities = serializers.ListField(child=serializers.CharField())


class GuardrailPolicySerializer(serializers.Serializer):
    application = serializers.IntegerField()
    pii = PiiPolicySerializer()
    injection = serializers.CharField()
    injection_threshold = serializers.FloatField()
    restore_pii_in_response = serializers.BooleanField()
    is_default = serializers.BooleanField()
    updated_at = serializers.DateTimeField(allow_null=True)


def policy_data(policy: GuardrailPolicy) -> dict[str, Any]:
    return {
        "application": policy.application_id,
        "pii": {"input": policy.pii_input, "output": policy.pii_output, "entities": list(policy.pii_entities)},
        "injection": policy.injection,
        "injection_threshold": policy.injection_threshold,
        "restore_pii_in_response": policy.restore_pii_in_response,
        "is_default": policy.pk is None,
        "updated_at": policy.updated_at.isoformat().replace("+00:00", "Z") if policy.updated_at else None,
    }


class ClassificationRuleSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id")
    level = ClearanceField()

    class Meta:
        model = ClassificationRule
        fields = [
            "id",
            "team",
            "name",
            "kind",
            "entities",
            "pattern",
            "keywords",
            "level",
            "is_enabled",
            "created_at",
            "updated_at",
        ]


class DataSourceSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id")
    classification = ClearanceField()

    class Meta:
        model = DataSource
        fields = [
            "id",
            "team",
            "name",
            "description",
            "classification",
            "leak_action",
            "leak_share",
            "text_sha256",
            "created_at",
            "updated_at",
        ]


class DataSourceDetailSerializer(DataSourceSerializer):
    fingerprint_count = serializers.IntegerField()
    text = serializers.SerializerMethodField()

    class Meta(DataSourceSerializer.Meta):
        fields = [*DataSourceSerializer.Meta.fields, "fingerprint_count", "text"]

    def get_text(self, source: DataSource) -> str | None:
        """The text only for callers cleared for the source's classification; null otherwise."""
        caller = get_caller(self.context["request"])
        return source.text if selectors.can_read_source_text(caller=caller, source=source) else None


# Input ----------------------------------------------------------------------------
# Field-level checks are the serializers'; what depends on several fields (a rule's detector)
# or goes beyond a field's type is checked here once, and the services take the values as given.


def rule_detector(*, kind: str, entities: Sequence[str], pattern: str, keywords: Sequence[str]) -> dict[str, Any]:
    """The detector fields of a rule of `kind` (entities, pattern, keywords): the one its kind
    uses, checked, and the other two empty."""
    if kind == DetectorKind.PII_ENTITY:
        if not entities:
            raise ValidationFailed("A pii_entity rule needs at least one entity type in 'entities'.", param="entities")
        return {"entities": list(dict.fromkeys(entities)), "pattern": "", "keywords": []}
    if kind == DetectorKind.REGEX:
        if not pattern:
            raise ValidationFailed("A regex rule needs a regular expression in 'pattern'.", param="pattern")
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise ValidationFailed(f"pattern is limited to {MAX_PATTERN_LENGTH} characters.", param="pattern")
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ValidationFailed(f"pattern is not a valid regular expression: {error}.", param="pattern") from None
        if compiled.search(""):
            raise ValidationFailed("pattern matches the empty string; make it match some text.", param="pattern")
        return {"entities": [], "pattern": pattern, "keywords": []}
    cleaned = [keyword.strip() for keyword in keywords if keyword.strip()]
    if not cleaned:
        raise ValidationFailed("A keywords rule needs at least one non-empty keyword in 'keywords'.", param="keywords")
    return {"entities": [], "pattern": "", "keywords": cleaned}


class DataSourceInput(StrictSerializer):
    """What creating and changing a data source check beyond each field: a leak share above 0."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "leak_share" in attrs and not 0.0 < attrs["leak_share"] <= 1.0:
            raise ValidationFailed("leak_share must be above 0 and at most 1.", param="leak_share")
        return attrs


class PiiPolicyInput(StrictSerializer):
    input = ChoiceField(choices=PiiAction.choices, required=False)
    output = ChoiceField(choices=PiiAction.choices, required=False)
    entities = serializers.ListField(child=ChoiceField(choices=PII_ENTITIES), required=False, max_length=50)


class GuardrailPolicyInput(StrictSerializer):
    pii = PiiPolicyInput(required=False)
    injection = ChoiceField(choices=InjectionAction.choices, required=False)
    injection_threshold = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    restore_pii_in_response = serializers.BooleanField(required=False)


class ClassificationRuleCreateInput(StrictSerializer):
    team = IdField()
    name = serializers.CharField(max_length=100)
    kind = ChoiceField(choices=DetectorKind.choices)
    level = ClearanceField()
    entities = serializers.ListField(child=ChoiceField(choices=PII_ENTITIES), required=False, default=list)
    pattern = serializers.CharField(required=False, allow_blank=True, default="")
    keywords = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list, max_length=MAX_KEYWORDS
    )
    is_enabled = serializers.BooleanField(required=False, default=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        detector = rule_detector(
            kind=attrs["kind"], entities=attrs["entities"], pattern=attrs["pattern"], keywords=attrs["keywords"]
        )
        return {**attrs, **detector}


class ClassificationRuleUpdateInput(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    kind = ChoiceField(choices=DetectorKind.choices, required=False)
    level = ClearanceField(required=False)
    entities = serializers.ListField(child=ChoiceField(choices=PII_ENTITIES), required=False)
    pattern = serializers.CharField(required=False, allow_blank=True)
    keywords = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=MAX_KEYWORDS
    )
    is_enabled = serializers.BooleanField(required=False)


class DataSourceCreateInput(DataSourceInput):
    team = IdField()
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=DESCRIPTION_MAX_LENGTH)
    classification = ClearanceField(default="confidential")
    text = serializers.CharField(max_length=5_000_000)
    leak_action = ChoiceField(choices=LeakAction.choices, required=False, default=LeakAction.BLOCK)
    leak_share = serializers.FloatField(min_value=0.0, max_value=1.0, required=False, default=0.2)


class DataSourceUpdateInput(DataSourceInput):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=DESCRIPTION_MAX_LENGTH)
    classification = ClearanceField(required=False)
    text = serializers.CharField(max_length=5_000_000, required=False)
    leak_action = ChoiceField(choices=LeakAction.choices, required=False)
    leak_share = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)


# Filters --------------------------------------------------------------------------


class ClassificationRuleFilter(django_filters.FilterSet):
    team = IdFilter(field_name="team_id")
    kind = django_filters.ChoiceFilter(choices=DetectorKind.choices)

    class Meta:
        model = ClassificationRule
        fields = ["team", "kind"]


class DataSourceFilter(django_filters.FilterSet):
    team = IdFilter(field_name="team_id")

    class Meta:
        model = DataSource
        fields = ["team"]


# Views ----------------------------------------------------------------------------


class GuardrailPolicyView(APIView):
    @extend_schema(responses=GuardrailPolicySerializer)
    def get(self, request: Request, application_id: int) -> Response:
        _, policy = selectors.guardrail_policy_get(caller=get_caller(request), application_id=application_id)
        return Response(policy_data(policy))

    @extend_schema(request=GuardrailPolicyInput, responses=GuardrailPolicySerializer)
    def put(self, request: Request, application_id: int) -> Response:
        caller = get_caller(request)
        application, _ = selectors.guardrail_policy_get(caller=caller, application_id=application_id)
        data = validated(GuardrailPolicyInput, request)
        pii_data = data.get("pii", {})
        policy = services.guardrail_policy_update(
            caller=caller,
            application=application,
            pii_input=pii_data.get("input"),
            pii_output=pii_data.get("output"),
            pii_entities=pii_data.get("entities"),
            restore_pii_in_response=data.get("restore_pii_in_response"),
            injection_action=data.get("injection"),
            injection_threshold=data.get("injection_threshold"),
        )
        return Response(policy_data(policy))


class ClassificationRuleListView(generics.ListAPIView):
    serializer_class = ClassificationRuleSerializer
    filterset_class = ClassificationRuleFilter

    def get_queryset(self) -> QuerySet[ClassificationRule]:
        return selectors.classification_rule_list(caller=get_caller(self.request))

    @extend_schema(request=ClassificationRuleCreateInput, responses={201: ClassificationRuleSerializer})
    def post(self, request: Request) -> Response:
        caller = get_caller(request)
        data = validated(ClassificationRuleCreateInput, request)
        team = account_selectors.team_get(caller=caller, team_id=data.pop("team"))
        rule = services.classification_rule_create(caller=caller, team=team, **data)
        return Response(ClassificationRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class ClassificationRuleDetailView(APIView):
    @extend_schema(responses=ClassificationRuleSerializer)
    def get(self, request: Request, rule_id: int) -> Response:
        rule = selectors.classification_rule_get(caller=get_caller(request), rule_id=rule_id)
        return Response(ClassificationRuleSerializer(rule).data)

    @extend_schema(request=ClassificationRuleUpdateInput, responses=ClassificationRuleSerializer)
    def patch(self, request: Request, rule_id: int) -> Response:
        caller = get_caller(request)
        rule = selectors.classification_rule_get(caller=caller, rule_id=rule_id)
        data = validated(ClassificationRuleUpdateInput, request)
        if any(name in data for name in DETECTOR_FIELDS):
            # A changed detector is checked whole, with the rule's current values for the rest.
            data.update(rule_detector(**{name: data.get(name, getattr(rule, name)) for name in DETECTOR_FIELDS}))
        rule = services.classification_rule_update(caller=caller, rule=rule, **data)
        return Response(ClassificationRuleSerializer(rule).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, rule_id: int) -> Response:
        caller = get_caller(request)
        rule = selectors.classification_rule_get(caller=caller, rule_id=rule_id)
        services.classification_rule_delete(caller=caller, rule=rule)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DataSourceListView(generics.ListAPIView):
    serializer_class = DataSourceSerializer
    filterset_class = DataSourceFilter

    def get_queryset(self) -> QuerySet[DataSource]:
        return selectors.data_source_list(caller=get_caller(self.request)).defer("text")

    @extend_schema(request=DataSourceCreateInput, responses={201: DataSourceDetailSerializer})
    def post(self, request: Request) -> Response:
        caller = get_caller(request)
        data = validated(DataSourceCreateInput, request)
        team = account_selectors.team_get(caller=caller, team_id=data.pop("team"))
        source = services.data_source_create(
            caller=caller, team=team, classification_level=data.pop("classification"), **data
        )
        return Response(
            DataSourceDetailSerializer(source, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class DataSourceDetailView(APIView):
    @extend_schema(responses=DataSourceDetailSerializer)
    def get(self, request: Request, source_id: int) -> Response:
        source = selectors.data_source_get(caller=get_caller(request), source_id=source_id)
        return Response(DataSourceDetailSerializer(source, context={"request": request}).data)

    @extend_schema(request=DataSourceUpdateInput, responses=DataSourceDetailSerializer)
    def patch(self, request: Request, source_id: int) -> Response:
        caller = get_caller(request)
        source = selectors.data_source_get(caller=caller, source_id=source_id)
        data = validated(DataSourceUpdateInput, request)
        if "classification" in data:
            data["classification_level"] = data.pop("classification")
        source = services.data_source_update(caller=caller, source=source, **data)
        return Response(DataSourceDetailSerializer(source, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, source_id: int) -> Response:
        caller = get_caller(request)
        source = selectors.data_source_get(caller=caller, source_id=source_id)
        services.data_source_delete(caller=caller, source=source)
        return Response(status=status.HTTP_204_NO_CONTENT)
