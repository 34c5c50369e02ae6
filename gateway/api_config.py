"""REST API for the model catalog (providers, models) and application routing.

Thin views: validate -> selector/service -> serialize. A provider's API key is accepted on
create and update and never returned (`has_api_key` says whether one is stored).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors as account_selectors
from accounts.authentication import get_caller
from accounts.caller import Caller
from core.api.filters import IdFilter
from core.api.serializers import ChoiceField, IdField, StrictSerializer, validated
from core.errors import ValidationFailed
from core.ids import parse_whole_number
from gateway import selectors, services
from gateway.models import LanguageModel, ModelTier, Provider, RoutingPolicy, RoutingPolicyKind

if TYPE_CHECKING:
    from accounts.models import Team

# Output ---------------------------------------------------------------------------


class ProviderSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id", allow_null=True)
    team_name = serializers.CharField(source="team.name", default=None, allow_null=True)
    has_api_key = serializers.BooleanField()

    class Meta:
        model = Provider
        fields = [
            "id",
            "team",
            "team_name",
            "name",
            "base_url",
            "has_api_key",
            "connect_timeout_seconds",
            "read_timeout_seconds",
            "max_retries",
            "retry_budget_seconds",
            "is_enabled",
            "created_at",
            "updated_at",
        ]


class PriceSerializer(serializers.Serializer):
    input_per_million = serializers.DecimalField(max_digits=12, decimal_places=6)
    output_per_million = serializers.DecimalField(max_digits=12, decimal_places=6)
    cached_input_per_million = serializers.DecimalField(max_digits=12, decimal_places=6, allow_null=True)
    is_free = serializers.BooleanField()
    effective_from = serializers.DateTimeField()


class LanguageModelSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id", allow_null=True)
    team_name = serializers.CharField(source="team.name", default=None, allow_null=True)
    provider = serializers.IntegerField(source="provider_id")
    provider_name = serializers.CharField(source="provider.name")
    price = serializers.SerializerMethodField()

    class Meta:
        model = LanguageModel
        fields = [
            "id",
            "team",
            "team_name",
            "name",
            "provider",
            "provider_name",
            "provider_model",
            "context_window",
            "tier",
            "fallbacks",
            "is_enabled",
            "price",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(PriceSerializer(allow_null=True))
    def get_price(self, model: LanguageModel) -> dict[str, Any] | None:
        price = selectors.model_price(model=model, at=self.context.get("now") or timezone.now())
        return PriceSerializer(price).data if price is not None else None


class TiersSerializer(serializers.Serializer):
    small = serializers.CharField(allow_null=True)
    medium = serializers.CharField(allow_null=True)
    large = serializers.CharField(allow_null=True)


class RoutingSerializer(serializers.ModelSerializer):
    application = serializers.IntegerField(source="application_id")
    tiers = serializers.SerializerMethodField()
    max_price = serializers.DecimalField(
        max_digits=12, decimal_places=6, allow_null=True, help_text="USD per million output tokens (cost_cap)."
    )

    class Meta:
        model = RoutingPolicy
        fields = ["application", "policy", "model", "tiers", "threshold", "max_price", "fallbacks", "updated_at"]

    @extend_schema_field(TiersSerializer)
    def get_tiers(self, routing: RoutingPolicy) -> dict[str, str | None]:
        tiers = routing.tiers if isinstance(routing.tiers, dict) else {}
        return {tier: tiers.get(tier) or None for tier in ModelTier.values}


class ConnectionCheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField(source="is_ok")
    message = serializers.CharField()
    models = serializers.ListField(child=serializers.CharField())
    status_code = serializers.IntegerField(allow_null=True)
    elapsed_ms = serializers.IntegerField()


# Input ----------------------------------------------------------------------------


class ProviderUpdateInput(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    base_url = serializers.CharField(max_length=500, required=False)
    api_key = serializers.CharField(
        required=False, allow_blank=True, write_only=True, trim_whitespace=True, help_text="Write-only; '' removes it."
    )
    connect_timeout_seconds = serializers.FloatField(required=False)
    read_timeout_seconds = serializers.FloatField(required=False)
    max_retries = serializers.IntegerField(required=False, min_value=0, max_value=10)
    retry_budget_seconds = serializers.FloatField(required=False)
    is_enabled = serializers.BooleanField(required=False)


class ProviderCreateInput(ProviderUpdateInput):
    team = IdField(required=False, allow_null=True, default=None, help_text="Omit for shared.")
    name = serializers.CharField(max_length=100)
    base_url = serializers.CharField(max_length=500)


@extend_schema_field(OpenApiTypes.STR)
class ProviderReferenceField(serializers.Field):
    """A provider's id or name."""

    default_error_messages = {"invalid": "Give the provider's id (a number) or its name."}

    def to_internal_value(self, data: Any) -> int | str:
        if isinstance(data, bool) or not isinstance(data, (int, str)) or data == "":
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class PriceInputMixin(serializers.Serializer):
    input_per_million = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=Decimal(0), required=False, help_text="USD per million tokens."
    )
    output_per_million = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=Decimal(0), required=False)
    cached_input_per_million = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=Decimal(0), required=False, allow_null=True
    )
    is_free = serializers.BooleanField(
        required=False,
        help_text="true: the model costs nothing (no amounts, or zeros). A model with neither a price nor "
        "is_free is refused while a budget applies to the call.",
    )


class ModelUpdateInput(PriceInputMixin, StrictSerializer):
    provider = ProviderReferenceField(required=False)
    provider_model = serializers.CharField(max_length=200, required=False)
    context_window = serializers.IntegerField(required=False, min_value=1, max_value=services.MAX_CONTEXT_WINDOW)
    tier = ChoiceField(choices=ModelTier.choices, required=False)
    fallbacks = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
    is_enabled = serializers.BooleanField(required=False)


class ModelCreateInput(ModelUpdateInput):
    team = IdField(required=False, allow_null=True, default=None, help_text="Omit for shared.")
    name = serializers.CharField(max_length=200)
    provider = ProviderReferenceField()
    provider_model = serializers.CharField(max_length=200)


class TiersInput(StrictSerializer):
    small = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True)
    medium = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True)
    large = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True)


class RoutingInput(StrictSerializer):
    policy = ChoiceField(choices=RoutingPolicyKind.choices, default=RoutingPolicyKind.FIXED)
    model = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    tiers = TiersInput(
        required=False, default=dict, help_text="Model names per tier; complexity needs small and large."
    )
    threshold = serializers.FloatField(
        required=False, default=None, allow_null=True, help_text="0..1; complexity above it goes to the large tier."
    )
    max_price = serializers.DecimalField(
        max_digits=12,
        decimal_places=6,
        min_value=Decimal(0),
        required=False,
        default=None,
        allow_null=True,
        help_text="cost_cap: the highest output price allowed, USD per million output tokens.",
    )
    fallbacks = serializers.ListField(child=serializers.CharField(max_length=200), required=False, default=list)


def _pop_team(caller: Caller, data: dict[str, Any]) -> Team | None:
    """The team a new provider or model belongs to (None: shared, operators only)."""
    team_id = data.pop("team")
    return account_selectors.team_get(caller=caller, team_id=team_id) if team_id is not None else None


def _pop_price(data: dict[str, Any]) -> services.Price | None:
    return services.price_from(
        input_per_million=data.pop("input_per_million", None),
        output_per_million=data.pop("output_per_million", None),
        cached_input_per_million=data.pop("cached_input_per_million", None),
        is_free=data.pop("is_free", None),
    )


# Filters --------------------------------------------------------------------------


class _CatalogFilter(django_filters.FilterSet):
    team = django_filters.CharFilter(method="filter_team", help_text="A team id, or 'shared'.")
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    is_enabled = django_filters.BooleanFilter()

    def filter_team(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        if value == "shared":
            return queryset.filter(team__isnull=True)
        team_id = parse_whole_number(value)
        if team_id is None:
            raise ValidationFailed("team must be a team id or 'shared'.", param="team")
        return queryset.filter(team_id=team_id)


class ProviderFilter(_CatalogFilter):
    class Meta:
        model = Provider
        fields = ["team", "name", "is_enabled"]


class LanguageModelFilter(_CatalogFilter):
    provider = IdFilter(field_name="provider_id")
    tier = django_filters.ChoiceFilter(choices=ModelTier.choices)

    class Meta:
        model = LanguageModel
        fields = ["team", "name", "is_enabled", "provider", "tier"]


# Views ----------------------------------------------------------------------------


class ProviderListView(generics.ListAPIView):
    serializer_class = ProviderSerializer
    filterset_class = ProviderFilter

    def get_queryset(self) -> QuerySet[Provider]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return Provider.objects.none()
        return selectors.provider_list(caller=get_caller(self.request))

    @extend_schema(request=ProviderCreateInput, responses={201: ProviderSerializer})
    def post(self, request: Request) -> Response:
        caller = get_caller(request)
        data = validated(ProviderCreateInput, request)
        team = _pop_team(caller, data)
        provider = services.provider_create(caller=caller, team=team, **data)
        return Response(ProviderSerializer(provider).data, status=status.HTTP_201_CREATED)


class ProviderDetailView(APIView):
    @extend_schema(responses=ProviderSerializer)
    def get(self, request: Request, provider_id: int) -> Response:
        provider = selectors.provider_get(caller=get_caller(request), provider_id=provider_id)
        return Response(ProviderSerializer(provider).data)

    @extend_schema(request=ProviderUpdateInput, responses=ProviderSerializer)
    def patch(self, request: Request, provider_id: int) -> Response:
        caller = get_caller(request)
        provider = selectors.provider_get(caller=caller, provider_id=provider_id)
        provider = services.provider_update(caller=caller, provider=provider, **validated(ProviderUpdateInput, request))
        return Response(ProviderSerializer(provider).data)

    @extend_schema(
        responses=ProviderSerializer, description="Disable the provider (never deleted: calls refer to it by name)."
    )
    def delete(self, request: Request, provider_id: int) -> Response:
        caller = get_caller(request)
        provider = selectors.provider_get(caller=caller, provider_id=provider_id)
        provider = services.provider_disable(caller=caller, provider=provider)
        return Response(ProviderSerializer(provider).data)


class ProviderTestView(APIView):
    @extend_schema(
        request=None,
        responses=ConnectionCheckSerializer,
        description="List the provider's models through the OpenAI SDK with its timeouts; reports ok or the error.",
    )
    def post(self, request: Request, provider_id: int) -> Response:
        caller = get_caller(request)
        provider = selectors.provider_get(caller=caller, provider_id=provider_id)
        result = services.provider_test_connection(caller=caller, provider=provider)
        return Response(ConnectionCheckSerializer(result).data)


class LanguageModelListView(generics.ListAPIView):
    serializer_class = LanguageModelSerializer
    filterset_class = LanguageModelFilter

    def get_queryset(self) -> QuerySet[LanguageModel]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return LanguageModel.objects.none()
        return selectors.model_list(caller=get_caller(self.request))

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": timezone.now()}

    @extend_schema(request=ModelCreateInput, responses={201: LanguageModelSerializer})
    def post(self, request: Request) -> Response:
        caller = get_caller(request)
        data = validated(ModelCreateInput, request)
        price = _pop_price(data)
        team = _pop_team(caller, data)
        model = services.model_create(caller=caller, team=team, price=price, **data)
        return Response(LanguageModelSerializer(model).data, status=status.HTTP_201_CREATED)


class LanguageModelDetailView(APIView):
    @extend_schema(responses=LanguageModelSerializer)
    def get(self, request: Request, model_id: int) -> Response:
        model = selectors.model_get(caller=get_caller(request), model_id=model_id)
        return Response(LanguageModelSerializer(model).data)

    @extend_schema(request=ModelUpdateInput, responses=LanguageModelSerializer)
    def patch(self, request: Request, model_id: int) -> Response:
        caller = get_caller(request)
        model = selectors.model_get(caller=caller, model_id=model_id)
        data = validated(ModelUpdateInput, request)
        price = _pop_price(data)
        model = services.model_update(caller=caller, model=model, price=price, **data)
        return Response(LanguageModelSerializer(model).data)

    @extend_schema(
        responses=LanguageModelSerializer, description="Disable the model (never deleted: calls refer to it by name)."
    )
    def delete(self, request: Request, model_id: int) -> Response:
        caller = get_caller(request)
        model = selectors.model_get(caller=caller, model_id=model_id)
        model = services.model_disable(caller=caller, model=model)
        return Response(LanguageModelSerializer(model).data)


class RoutingView(APIView):
    @extend_schema(responses=RoutingSerializer)
    def get(self, request: Request, application_id: int) -> Response:
        _, routing = selectors.routing_get(caller=get_caller(request), application_id=application_id)
        return Response(RoutingSerializer(routing).data)

    @extend_schema(
        request=RoutingInput,
        responses=RoutingSerializer,
        description="Replace the application's routing. `fixed` serves `model` (when set, overriding the "
        "requested model). `complexity` scores each query 0..1 and sends it to `tiers.large` above `threshold`, "
        "to `tiers.medium` (when set) above `threshold / 2`, else to `tiers.small`. `cost_cap` serves `model` (or "
        "the requested model) when its output price is at most `max_price` (USD per million output tokens), "
        "else the best tier within it. Every policy then tries `fallbacks` in order.",
    )
    def put(self, request: Request, application_id: int) -> Response:
        caller = get_caller(request)
        application, _ = selectors.routing_get(caller=caller, application_id=application_id)
        routing = services.routing_set(caller=caller, application=application, **validated(RoutingInput, request))
        return Response(RoutingSerializer(routing).data)
