"""Guardrail pages (htmx-friendly, plain function views) over the same selectors and services as the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts import roles
from accounts import selectors as account_selectors
from accounts.authentication import get_caller
from compliance.guardrails import selectors, services
from compliance.guardrails.models import PII_ENTITIES, GuardrailPolicy, InjectionAction, PiiAction
from core.errors import ApplicationError
from core.htmx import render_page
from core.pages import page_action

INDEX_PAGE = "guardrails/index.html"
INDEX_CONTENT = "guardrails/partials/_index_content.html"
POLICY_PAGE = "guardrails/policy.html"
POLICY_CONTENT = "guardrails/partials/_policy_content.html"


class PolicyForm(forms.Form):
    pii_input = forms.ChoiceField(label="PII in requests", choices=PiiAction.choices)
    pii_output = forms.ChoiceField(label="PII in responses", choices=PiiAction.choices)
    pii_entities = forms.MultipleChoiceField(
        label="PII entity types",
        choices=[(entity, entity) for entity in PII_ENTITIES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    restore_pii_in_response = forms.BooleanField(label="Restore redacted PII in the response", required=False)
    injection = forms.ChoiceField(label="Prompt injection", choices=InjectionAction.choices)
    injection_threshold = forms.FloatField(label="Injection threshold (0 to 1)", min_value=0.0, max_value=1.0)


@login_required
def index(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    applications = list(account_selectors.application_list(caller=caller).order_by("team__name", "name"))
    policies = {
        policy.application_id: policy
        for policy in GuardrailPolicy.objects.filter(application__in=[app.id for app in applications])
    }
    rows = [
        {"application": application, "policy": policies.get(application.id) or services.default_policy(application)}
        for application in applications
        if caller.has_permission(roles.VIEW_GUARDRAIL_POLICY, team_id=application.team_id)
    ]
    sources = list(selectors.data_source_list(caller=caller).defer("text"))
    context: dict[str, Any] = {
        "rows": rows,
        "rules": list(selectors.classification_rule_list(caller=caller)),
        "sources": [
            {"source": source, "text_visible": selectors.can_read_source_text(caller=caller, source=source)}
            for source in sources
        ],
    }
    return render_page(request, page=INDEX_PAGE, partial=INDEX_CONTENT, context=context)


@login_required
@require_http_methods(["GET", "POST"])
def policy(request: HttpRequest, application_id: int) -> HttpResponse:
    caller = get_caller(request)
    application, current = selectors.guardrail_policy_get(caller=caller, application_id=application_id)

    def context(form: PolicyForm, error: ApplicationError | None = None) -> dict[str, Any]:
        return {
            "application": application,
            "policy": current,
            "form": form,
            "can_change": caller.has_permission(roles.CHANGE_GUARDRAIL_POLICY, team_id=application.team_id),
            "error": error,
            "saved": request.GET.get("saved") == "1",
        }

    if request.method == "POST":
        form = PolicyForm(request.POST)

        def update() -> None:
            data = form.cleaned_data
            services.guardrail_policy_update(
                caller=caller,
                application=application,
                pii_input=data["pii_input"],
                pii_output=data["pii_output"],
                pii_entities=data["pii_entities"],
                restore_pii_in_response=data["restore_pii_in_response"],
                injection_action=data["injection"],
                injection_threshold=data["injection_threshold"],
            )

        return page_action(
            request,
            update,
            form=form,
            errors_on_fields=False,  # the page shows a refusal above the form
            success=lambda _: redirect(reverse("guardrails:policy", args=[application.id]) + "?saved=1"),
            context=lambda refusal: context(form, refusal.error),
            page=POLICY_PAGE,
            partial=POLICY_CONTENT,
        )
    form = PolicyForm(
        initial={
            "pii_input": current.pii_input,
            "pii_output": current.pii_output,
            "pii_entities": list(current.pii_entities),
            "restore_pii_in_response": current.restore_pii_in_response,
            "injection": current.injection,
            "injection_threshold": current.injection_threshold,
        }
    )
    return render_page(request, page=POLICY_PAGE, partial=POLICY_CONTENT, context=context(form))
