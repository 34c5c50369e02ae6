"""REST API for an application's semantic cache: settings, entries, purge, shadow reviews."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import get_caller
from core.api.serializers import ChoiceField, ClearanceField, StrictSerializer, validated
from gateway.semantic_cache import selectors, services
from gateway.semantic_cache.models import MAX_MAX_ENTRIES, MAX_TTL_SECONDS, CacheEntry
from gateway.semantic_cache.types import CacheMode

# Output ---------------------------------------------------------------------------


class CacheSettingsSerializer(serializers.Serializer):
    application = serializers.IntegerField(source="application_id")
    mode = serializers.CharField()
    threshold = serializers.FloatField()
    ttl_seconds = serializers.IntegerField()
    max_entries = serializers.IntegerField()
    cache_nonzero_temperature = serializers.BooleanField()


class CacheEntrySerializer(serializers.Serializer):
    id = serializers.CharField(source="entry.id")
    model = serializers.CharField(source="entry.model")
    prompt_version_id = serializers.IntegerField(source="entry.prompt_version_id", allow_null=True)
    params = serializers.JSONField(source="entry.params")
    clearance = ClearanceField(source="entry.clearance")
    is_masked = serializers.BooleanField(help_text="Content hidden: made under a clearance above yours.")
    query_text = serializers.CharField()
    answer_text = serializers.CharField()
    cost_usd = serializers.DecimalField(source="entry.cost_usd", max_digits=14, decimal_places=8)
    hit_count = serializers.IntegerField(source="entry.hit_count")
    shadow_hit_count = serializers.IntegerField(source="entry.shadow_hit_count")
    is_flagged = serializers.BooleanField(source="entry.is_flagged")
    flag_reason = serializers.CharField(source="entry.flag_reason")
    created_at = serializers.DateTimeField(source="entry.created_at")
    last_used_at = serializers.DateTimeField(source="entry.last_used_at")
    expires_at = serializers.DateTimeField(source="entry.expires_at")


class PurgeResultSerializer(serializers.Serializer):
    purged = serializers.IntegerField()


# Input ----------------------------------------------------------------------------


class CacheSettingsInput(StrictSerializer):
    mode = ChoiceField(choices=CacheMode.choices, required=False)
    threshold = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    ttl_seconds = serializers.IntegerField(required=False, min_value=0, max_value=MAX_TTL_SECONDS)
    max_entries = serializers.IntegerField(required=False, min_value=1, max_value=MAX_MAX_ENTRIES)
    cache_nonzero_temperature = serializers.BooleanField(required=False)


# Views ----------------------------------------------------------------------------


class CacheSettingsView(APIView):
    @extend_schema(responses=CacheSettingsSerializer)
    def get(self, request: Request, application_id: int) -> Response:
        application = selectors.application_for_cache(caller=get_caller(request), application_id=application_id)
        return Response(CacheSettingsSerializer(selectors.settings_get(application=application)).data)

    @extend_schema(
        request=CacheSettingsInput,
        responses=CacheSettingsSerializer,
        description="Set the application's cache settings; fields left out keep their value. "
        "`mode`: off, shadow (look up and record what would have been served, never serve) or on.",
    )
    def put(self, request: Request, application_id: int) -> Response:
        caller = get_caller(request)
        application = selectors.application_for_cache(caller=caller, application_id=application_id)
        services.cache_settings_set(caller=caller, application=application, **validated(CacheSettingsInput, request))
        return Response(CacheSettingsSerializer(selectors.settings_get(application=application)).data)


class CacheEntryListView(generics.ListAPIView):
    serializer_class = CacheEntrySerializer

    def get_queryset(self) -> QuerySet[CacheEntry]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return CacheEntry.objects.none()
        application = selectors.application_for_cache(
            caller=get_caller(self.request), application_id=self.kwargs["application_id"]
        )
        return selectors.entry_list(application=application)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        caller = get_caller(request)
        page = self.paginate_queryset(self.get_queryset())
        views = [selectors.entry_view(caller=caller, entry=entry) for entry in page or []]
        return self.get_paginated_response(CacheEntrySerializer(views, many=True).data)

    @extend_schema(request=None, responses=PurgeResultSerializer, description="Purge: delete every entry.")
    def delete(self, request: Request, application_id: int) -> Response:
        caller = get_caller(request)
        application = selectors.application_for_cache(caller=caller, application_id=application_id)
        purged = services.entries_purge(caller=caller, application=application)
        return Response({"purged": purged})
