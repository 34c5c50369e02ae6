"""Form parsing for the cache page: types and the bounds of the settings (the API's
`CacheSettingsInput` checks the same); permissions are the services' job."""

from __future__ import annotations

from django import forms

from gateway.semantic_cache.models import MAX_MAX_ENTRIES, MAX_TTL_SECONDS
from gateway.semantic_cache.types import CacheMode

THRESHOLD_RANGE = "must be a cosine similarity between 0 and 1, such as 0.92."


class CacheSettingsForm(forms.Form):
    mode = forms.ChoiceField(choices=CacheMode.choices)
    threshold = forms.FloatField(
        min_value=0.0, max_value=1.0, error_messages={"min_value": THRESHOLD_RANGE, "max_value": THRESHOLD_RANGE}
    )
    ttl_seconds = forms.IntegerField(min_value=0, max_value=MAX_TTL_SECONDS)
    max_entries = forms.IntegerField(min_value=1, max_value=MAX_MAX_ENTRIES)
    cache_nonzero_temperature = forms.BooleanField(required=False)


class ShadowReviewForm(forms.Form):
    call_id = forms.UUIDField()
    verdict = forms.ChoiceField(choices=[("right", "Right"), ("wrong", "Wrong")])
