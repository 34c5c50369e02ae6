"""REST API: budgets CRUD and status, the cost summary from rollups."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import get_caller
from accounts.selectors import team_get
from core.api.filters import IdFilter
from core.api.serializers import ChoiceField, IdField, StrictSerializer, validated
from core.dates import MomentField
from costs import selectors, services
from costs.models import Budget, BudgetAction, BudgetPeriodKind, BudgetScope

# Output ---------------------------------------------------------------------------


class BudgetSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="team_id")
    has_webhook = serializers.SerializerMethodField()

    class Meta:
        model = Budget
        fields = [
            "id",
            "team",
            "name",
            "scope",
            "scope_value",
            "period",
            "amount_usd",
            "thresholds",
            "action",
            "downgrade_model",
            "alert_emails",
            "webhook_url",
            "has_webhook",
            "is_enabled",
            "created_at",
            "updated_at",
        ]

    def get_has_webhook(self, budget: Budget) -> bool:
        return bool(budget.webhook_url)


class BudgetCreatedSerializer(BudgetSerializer):
    webhook_secret = serializers.SerializerMethodField()

    class Meta(BudgetSerializer.Meta):
        fields = [*BudgetSerializer.Meta.fields, "webhook_secret"]

    def get_webhook_secret(self, budget: Budget) -> str:
        return str(self.context["webhook_secret"])


class BudgetStatusSerializer(serializers.Serializer):
    budget = serializers.IntegerField(source="budget.id")
    name = serializers.CharField(source="budget.name")
    period = serializers.CharField(source="budget.period")
    period_start = serializers.DateTimeField()
    resets_at = serializers.DateTimeField(allow_null=True)
    limit = serializers.DecimalField(source="limit_usd", max_digits=20, decimal_places=8)
    spent = serializers.DecimalField(source="spent_usd", max_digits=20, decimal_places=8)
    reserved = serializers.DecimalField(source="reserved_usd", max_digits=20, decimal_places=8)
    remaining = serializers.DecimalField(source="remaining_usd", max_digits=20, decimal_places=8)
    percent_used = serializers.FloatField()
    forecast = serializers.DecimalField(source="forecast_usd", max_digits=20, decimal_places=8, allow_null=True)


# Input ----------------------------------------------------------------------------


def _thresholds_field(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.IntegerField(
            min_value=1,
            max_value=100,
            error_messages={
                "min_value": "Each threshold is a percent from 1 to 100.",
                "max_value": "Each threshold is a percent from 1 to 100.",
            },
        ),
        min_length=1,
        max_length=10,
        **kwargs,
    )


class _BudgetFields(StrictSerializer):
    name = serializers.CharField(max_length=200)
    amount_usd = serializers.DecimalField(
        max_digits=14,
        decimal_places=8,
        min_value=0,
        error_messages={"min_value": "amount_usd must be more than zero (USD per period)."},
    )
    thresholds = _thresholds_field(default=[50, 80, 100])
    action = ChoiceField(choices=BudgetAction.choices, default=BudgetAction.BLOCK)
    downgrade_model = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    alert_emails = serializers.ListField(child=serializers.EmailField(), max_length=20, default=list)
    webhook_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    is_enabled = serializers.BooleanField(default=True)

    def validate_amount_usd(self, value: Any) -> Any:
        if value <= 0:
            raise serializers.ValidationError("amount_usd must be more than zero (USD per period).")
        return value


class BudgetCreateInput(_BudgetFields):
    team = IdField()
    scope = ChoiceField(choices=BudgetScope.choices)
    scope_value = serializers.CharField(max_length=256, required=False, allow_blank=True, default="")
    period = ChoiceField(choices=BudgetPeriodKind.choices)


class BudgetUpdateInput(_BudgetFields):
    """Scope and period are fixed once created (the spend counted belongs to them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty


class SummaryInput(StrictSerializer):
    group_by = ChoiceField(choices=list(selectors.GROUP_BY_DIMENSION), default="model")
    interval = ChoiceField(choices=["hour", "day"], default="day")
    team = IdField(required=False)
    top = serializers.IntegerField(required=False, default=20, min_value=1, max_value=selectors.MAX_TOP)
    # "from" is a Python keyword: declared below.
    to = MomentField(required=False)


SummaryInput._declared_fields["from"] = MomentField(required=False)


class BudgetFilter(django_filters.FilterSet):
    team = IdFilter(field_name="team_id")
    scope = django_filters.ChoiceFilter(choices=BudgetScope.choices)
    period = django_filters.ChoiceFilter(choices=BudgetPeriodKind.choices)

    class Meta:
        model = Budget
        fields = ["team", "scope", "period"]


# Views ----------------------------------------------------------------------------


class BudgetListView(generics.ListAPIView):
    serializer_class = BudgetSerializer
    filterset_class = BudgetFilter

    def get_queryset(self) -> QuerySet[Budget]:
        return selectors.budget_list(caller=get_caller(self.request)).order_by("-id")

    @extend_schema(request=BudgetCreateInput, responses={201: BudgetCreatedSerializer})
    def post(self, request: Request) -> Response:
        caller = get_caller(request)
        data = validated(BudgetCreateInput, request)
        team = team_get(caller=caller, team_id=data.pop("team"))
        budget, secret = services.budget_create(caller=caller, team=team, **data)
        body = BudgetCreatedSerializer(budget, context={"webhook_secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class BudgetDetailView(APIView):
    @extend_schema(responses=BudgetSerializer)
    def get(self, request: Request, budget_id: int) -> Response:
        return Response(BudgetSerializer(selectors.budget_get(caller=get_caller(request), budget_id=budget_id)).data)

    @extend_schema(request=BudgetUpdateInput, responses=BudgetSerializer)
    def patch(self, request: Request, budget_id: int) -> Response:
        caller = get_caller(request)
        budget = selectors.budget_get(caller=caller, budget_id=budget_id)
        budget = services.budget_update(caller=caller, budget=budget, **validated(BudgetUpdateInput, request))
        return Response(BudgetSerializer(budget).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, budget_id: int) -> Response:
        caller = get_caller(request)
        services.budget_delete(caller=caller, budget=selectors.budget_get(caller=caller, budget_id=budget_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class BudgetStatusView(APIView):
    @extend_schema(responses=BudgetStatusSerializer)
    def get(self, request: Request, budget_id: int) -> Response:
        budget = selectors.budget_get(caller=get_caller(request), budget_id=budget_id)
        return Response(BudgetStatusSerializer(selectors.budget_status(budget=budget)).data)


class CostSummaryView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("group_by", str, enum=list(selectors.GROUP_BY_DIMENSION)),
            OpenApiParameter("interval", str, enum=["hour", "day"]),
            OpenApiParameter("from", str, description="ISO 8601 start (default: 30 days before `to`)"),
            OpenApiParameter("to", str, description="ISO 8601 end, exclusive (default: now)"),
            OpenApiParameter("team", int),
            OpenApiParameter("top", int, description="the largest groups by cost (default 20); the rest as '(other)'"),
        ],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        data = validated(SummaryInput, {key: request.query_params.get(key) for key in request.query_params})
        query = selectors.summary_query(
            caller=get_caller(request),
            group_by=data["group_by"],
            start=data.get("from"),
            end=data.get("to"),
            interval=data["interval"],
            team_id=data.get("team"),
            top=data["top"],
        )
        return Response(selectors.cost_summary(query=query))
