"""Form parsing for the gateway pages: types only. Ranges, names and permissions are the
services' job, so that the pages, the API and gateway_sync refuse the same things."""

from __future__ import annotations

from typing import Any

from django import forms

from core.errors import ValidationFailed
from gateway.models import ModelTier, RoutingPolicyKind
from gateway.services import MAX_CONTEXT_WINDOW


def parsed(form: forms.Form) -> dict[str, Any]:
    """The cleaned data, or ValidationFailed naming the first bad field."""
    if not form.is_valid():
        name, messages = next(iter(form.errors.items()))
        raise ValidationFailed(f"{name}: {' '.join(str(message) for message in messages)}", param=name)
    return dict(form.cleaned_data)


def names(text: str) -> list[str]:
    """Comma-separated model names, in order."""
    return [name.strip() for name in text.split(",") if name.strip()]


class ProviderForm(forms.Form):
    name = forms.CharField(max_length=100)
    base_url = forms.CharField(max_length=500)
    api_key = forms.CharField(required=False, strip=True, widget=forms.PasswordInput(render_value=False))
    remove_api_key = forms.BooleanField(required=False)
    connect_timeout_seconds = forms.FloatField()
    read_timeout_seconds = forms.FloatField()
    max_retries = forms.IntegerField(min_value=0, max_value=10)
    retry_budget_seconds = forms.FloatField()


PRICE_FIELDS = ("input_per_million", "output_per_million", "cached_input_per_million")


class LanguageModelForm(forms.Form):
    provider = forms.CharField(max_length=200)
    provider_model = forms.CharField(max_length=200)
    context_window = forms.IntegerField(min_value=1, max_value=MAX_CONTEXT_WINDOW)
    tier = forms.ChoiceField(choices=ModelTier.choices)
    fallbacks = forms.CharField(required=False)
    input_per_million = forms.DecimalField(required=False, max_digits=12, decimal_places=6)
    output_per_million = forms.DecimalField(required=False, max_digits=12, decimal_places=6)
    cached_input_per_million = forms.DecimalField(required=False, max_digits=12, decimal_places=6)
    is_free = forms.BooleanField(required=False)


class RoutingForm(forms.Form):
    policy = forms.ChoiceField(choices=RoutingPolicyKind.choices)
    model = forms.CharField(required=False, max_length=200)
    fallbacks = forms.CharField(required=False)
    tier_small = forms.CharField(required=False, max_length=200)
    tier_medium = forms.CharField(required=False, max_length=200)
    tier_large = forms.CharField(required=False, max_length=200)
    threshold = forms.FloatField(required=False)
    max_price = forms.DecimalField(required=False, max_digits=12, decimal_places=6)

    @staticmethod
    def policy_values(data: dict[str, Any]) -> dict[str, Any]:
        """The routing_set / routing_check keyword arguments of cleaned data."""
        return {
            "policy": data["policy"],
            "model": data["model"],
            "fallbacks": names(data["fallbacks"]),
            "tiers": {tier: data[f"tier_{tier}"] for tier in ModelTier.values if data.get(f"tier_{tier}")},
            "threshold": data["threshold"],
            "max_price": data["max_price"],
        }


class RoutingSimulationForm(RoutingForm):
    limit = forms.IntegerField(required=False, min_value=1, max_value=1000)
