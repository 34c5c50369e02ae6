"""Form parsing for the cache page: types only; ranges and permissions are the services' job."""

from __future__ import annotations

from django import forms

from gateway.semantic_cache.models import CacheMode


class CacheSettingsForm(forms.Form):
    mode = forms.ChoiceField(choices=CacheMode.choices)
    threshold = forms.FloatField()
    ttl_seconds = forms.IntegerField()
    max_entries = forms.IntegerField()
    cache_nonzero_temperature = forms.BooleanField(required=False)


class ShadowReviewForm(forms.Form):
    call_id = forms.UUIDField()
    verdict = forms.ChoiceField(choices=[("right", "Right"), ("wrong", "Wrong")])
