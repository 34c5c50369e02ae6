"""Gateway pages (htmx): providers, models and routing over the same services as the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import roles
from accounts import selectors as account_selectors
from accounts.authentication import get_caller
from accounts.caller import Caller
from core.errors import ApplicationError, PermissionDenied, ValidationFailed
from core.pages import Refusal, page_action
from gateway import forms, selectors, services
from gateway.models import LanguageModel, ModelTier, Provider, RoutingPolicy, RoutingPolicyKind
from gateway.routing import PolicyConfig

if TYPE_CHECKING:
    from accounts.models import Team

NAV = "gateway"

Entry = TypeVar("Entry", Provider, LanguageModel)


def _is_operator(caller: Caller) -> bool:
    return caller.user is not None and caller.user.is_superuser


def _can_manage(caller: Caller, team_id: int | None) -> bool:
    if team_id is None:
        return _is_operator(caller)
    return caller.has_permission(roles.MANAGE_CATALOG, team_id=team_id)


def _manageable_teams(caller: Caller) -> list[Team]:
    return [
        team
        for team in account_selectors.team_list(caller=caller).order_by("name")
        if caller.has_permission(roles.MANAGE_CATALOG, team_id=team.id)
    ]


def _team_from_post(request: HttpRequest, caller: Caller) -> Team | None:
    value = request.POST.get("team", "").strip()
    if value in ("", "shared"):
        return None
    return account_selectors.team_get(caller=caller, team_id=value)


def _error_partial(refusal: Refusal) -> dict[str, Any]:
    return {"error": refusal.error}


ERROR_PARTIAL = "gateway/partials/_error.html"


def _on_off(request: HttpRequest) -> bool:
    value = request.POST.get("is_enabled", "")
    if value not in ("true", "false"):
        raise ValidationFailed("is_enabled must be true or false.", param="is_enabled")
    return value == "true"


# The catalog -------------------------------------------------------------------------


@login_required
def catalog_page(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    providers = list(selectors.provider_list(caller=caller))
    models = list(selectors.model_list(caller=caller))
    for entry in [*providers, *models]:
        entry.can_manage = _can_manage(caller, entry.team_id)  # type: ignore[attr-defined]  # for the template
    for model in models:
        model.price = services.model_price_current(model=model)  # type: ignore[attr-defined]  # for the template
    applications = list(account_selectors.application_list(caller=caller).select_related("routing").order_by("name"))
    context = {
        "providers": providers,
        "models": models,
        "applications": applications,
        "can_add": _is_operator(caller) or bool(_manageable_teams(caller)),
        "nav_current": NAV,
    }
    return render(request, "gateway/catalog.html", context)


# Providers ---------------------------------------------------------------------------


PROVIDER_DEFAULTS = {
    "connect_timeout_seconds": 5,
    "read_timeout_seconds": 60,
    "max_retries": 2,
    "retry_budget_seconds": 20,
}


def _initial(request: HttpRequest, entry: Any, fields: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """What the form shows: the posted values after a refusal, else the entry's, else defaults."""
    if request.method == "POST":
        return {name: request.POST.get(name, "") for name in ["team", "name", *fields]}
    if entry is not None:
        return {name: getattr(entry, name) for name in ["name", *fields]}
    return {"team": "", "name": "", **dict.fromkeys(fields, ""), **defaults}


def _provider_form_context(
    request: HttpRequest, caller: Caller, provider: Provider | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "teams": _manageable_teams(caller),
        "can_share": _is_operator(caller),
        "provider": provider,
        "initial": _initial(request, provider, ["base_url", *PROVIDER_DEFAULTS], PROVIDER_DEFAULTS),
        "nav_current": NAV,
        **extra,
    }


def _require_some_scope(caller: Caller, what: str) -> None:
    if not _is_operator(caller) and not _manageable_teams(caller):
        raise PermissionDenied(
            f"Your role does not allow you to add {what}; ask a team admin for a role that has "
            f"the '{roles.MANAGE_CATALOG}' permission."
        )


def _catalog_form(
    request: HttpRequest,
    *,
    template: str,
    context: Callable[..., dict[str, Any]],
    save: Callable[[], object],
    entry: Provider | LanguageModel | None = None,
) -> HttpResponse:
    """A provider's or model's form page: on a valid post save and go back to the catalog; on a
    refusal show the form again with the posted values and the error."""
    if request.method != "POST":
        return render(request, template, context())

    def refused(refusal: Refusal) -> dict[str, Any]:
        if entry is not None:
            entry.refresh_from_db()
        return context(error=refusal.error)

    return page_action(request, save, success=lambda _: redirect("gateway:catalog"), context=refused, page=template)


def _enabled_switch(
    request: HttpRequest,
    update: Callable[[bool], Entry],
    *,
    row: str,
    name: str,
    annotate: Callable[[Entry], None] | None = None,
) -> HttpResponse:
    """Turn a provider or model on or off: its catalog row re-rendered for htmx (the catalog
    page for a plain post), or the refusal."""

    def switched(entry: Entry) -> HttpResponse:
        if not request.htmx:  # type: ignore[attr-defined]  # django-htmx
            return redirect("gateway:catalog")
        entry.can_manage = True  # type: ignore[attr-defined]  # the update above proved it
        if annotate is not None:
            annotate(entry)
        return render(request, row, {name: entry})

    return page_action(
        request, lambda: update(_on_off(request)), success=switched, context=_error_partial, page=ERROR_PARTIAL
    )


@login_required
@require_http_methods(["GET", "POST"])
def provider_create(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    _require_some_scope(caller, "providers")

    def save() -> Provider:
        team = _team_from_post(request, caller)
        data = forms.parsed(forms.ProviderForm(request.POST))
        data.pop("remove_api_key")
        return services.provider_create(caller=caller, team=team, **data)

    return _catalog_form(
        request,
        template="gateway/provider_form.html",
        context=lambda **extra: _provider_form_context(request, caller, **extra),
        save=save,
    )


@login_required
@require_http_methods(["GET", "POST"])
def provider_edit(request: HttpRequest, provider_id: int) -> HttpResponse:
    caller = get_caller(request)
    provider = selectors.provider_get(caller=caller, provider_id=provider_id)
    services.require_catalog_manager(caller, team_id=provider.team_id, action="change providers")

    def save() -> Provider:
        data = forms.parsed(forms.ProviderForm(request.POST))
        api_key = "" if data.pop("remove_api_key") else (data.pop("api_key") or None)
        data.pop("api_key", None)
        return services.provider_update(caller=caller, provider=provider, api_key=api_key, **data)

    return _catalog_form(
        request,
        template="gateway/provider_form.html",
        context=lambda **extra: _provider_form_context(request, caller, provider=provider, **extra),
        save=save,
        entry=provider,
    )


@login_required
@require_POST
def provider_enabled(request: HttpRequest, provider_id: int) -> HttpResponse:
    caller = get_caller(request)
    provider = selectors.provider_get(caller=caller, provider_id=provider_id)
    return _enabled_switch(
        request,
        lambda is_enabled: services.provider_update(caller=caller, provider=provider, is_enabled=is_enabled),
        row="gateway/partials/_provider_row.html",
        name="provider",
    )


@login_required
@require_POST
def provider_test(request: HttpRequest, provider_id: int) -> HttpResponse:
    caller = get_caller(request)
    provider = selectors.provider_get(caller=caller, provider_id=provider_id)
    return page_action(
        request,
        lambda: services.provider_test_connection(caller=caller, provider=provider),
        success=lambda result: render(
            request, "gateway/partials/_test_result.html", {"result": result, "provider": provider}
        ),
        context=_error_partial,
        page=ERROR_PARTIAL,
    )


# Models ------------------------------------------------------------------------------


def _model_form_context(
    request: HttpRequest, caller: Caller, model: LanguageModel | None = None, **extra: Any
) -> dict[str, Any]:
    initial = _initial(
        request,
        model,
        ["provider_model", "context_window", "tier", "fallbacks"],
        {"context_window": 8192, "tier": ModelTier.MEDIUM},
    )
    if request.method == "POST":
        initial["provider"] = request.POST.get("provider", "")
        initial.update({name: request.POST.get(name, "") for name in forms.PRICE_FIELDS})
        initial["is_free"] = bool(request.POST.get("is_free"))
    else:
        initial["provider"] = str(model.provider_id) if model is not None else ""
        initial["fallbacks"] = ", ".join(model.fallbacks) if model is not None else ""
        initial.update(dict.fromkeys(forms.PRICE_FIELDS, ""))
    return {
        "teams": _manageable_teams(caller),
        "can_share": _is_operator(caller),
        "model": model,
        "providers": [provider for provider in selectors.provider_list(caller=caller) if provider.is_enabled],
        "tiers": ModelTier.choices,
        "initial": initial,
        "price": services.model_price_current(model=model) if model is not None else None,
        "nav_current": NAV,
        **extra,
    }


def _model_values(request: HttpRequest) -> tuple[dict[str, Any], services.Price | None]:
    data = forms.parsed(forms.LanguageModelForm(request.POST))
    price = services.price_from(
        input_per_million=data.pop("input_per_million"),
        output_per_million=data.pop("output_per_million"),
        cached_input_per_million=data.pop("cached_input_per_million"),
        is_free=data.pop("is_free"),
    )
    data["fallbacks"] = forms.names(data["fallbacks"])
    return data, price


@login_required
@require_http_methods(["GET", "POST"])
def model_create(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    _require_some_scope(caller, "models")

    def save() -> LanguageModel:
        team = _team_from_post(request, caller)
        data, price = _model_values(request)
        return services.model_create(caller=caller, team=team, name=request.POST.get("name", ""), price=price, **data)

    return _catalog_form(
        request,
        template="gateway/model_form.html",
        context=lambda **extra: _model_form_context(request, caller, **extra),
        save=save,
    )


@login_required
@require_http_methods(["GET", "POST"])
def model_edit(request: HttpRequest, model_id: int) -> HttpResponse:
    caller = get_caller(request)
    model = selectors.model_get(caller=caller, model_id=model_id)
    services.require_catalog_manager(caller, team_id=model.team_id, action="change models")

    def save() -> LanguageModel:
        data, price = _model_values(request)
        return services.model_update(caller=caller, model=model, price=price, **data)

    return _catalog_form(
        request,
        template="gateway/model_form.html",
        context=lambda **extra: _model_form_context(request, caller, model=model, **extra),
        save=save,
        entry=model,
    )


@login_required
@require_POST
def model_enabled(request: HttpRequest, model_id: int) -> HttpResponse:
    caller = get_caller(request)
    model = selectors.model_get(caller=caller, model_id=model_id)

    def with_price(model: LanguageModel) -> None:
        model.price = services.model_price_current(model=model)  # type: ignore[attr-defined]  # for the template

    return _enabled_switch(
        request,
        lambda is_enabled: services.model_update(caller=caller, model=model, is_enabled=is_enabled),
        row="gateway/partials/_model_row.html",
        name="model",
        annotate=with_price,
    )


# Routing -----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def routing_page(request: HttpRequest, application_id: int) -> HttpResponse:
    caller = get_caller(request)
    application, routing = selectors.routing_get(caller=caller, application_id=application_id)
    model_names = sorted(services.model_names_visible_to(application.team_id))
    context: dict[str, Any] = {
        "application": application,
        "routing": routing,
        "model_names": model_names,
        "policies": RoutingPolicyKind.choices,
        "can_change": caller.has_permission(roles.CHANGE_APPLICATION, team_id=application.team_id, obj=application),
        "nav_current": NAV,
    }
    status = 200
    if request.method == "POST":
        try:
            data = forms.parsed(forms.RoutingForm(request.POST))
            context["routing"] = services.routing_set(
                caller=caller, application=application, **forms.RoutingForm.policy_values(data)
            )
            context["saved"] = True
        except ApplicationError as error:
            context["error"] = error
            status = error.status_code
    context["tier_choices"] = _tier_choices(context["routing"])
    return render(request, "gateway/routing.html", context, status=status)


def _tier_choices(routing: RoutingPolicy) -> list[tuple[str, str]]:
    tiers = routing.tiers if isinstance(routing.tiers, dict) else {}
    return [(tier, str(tiers.get(tier) or "")) for tier in ModelTier.values]


@login_required
@require_http_methods(["GET"])
def routing_simulate(request: HttpRequest, application_id: int) -> HttpResponse:
    """Replay the application's last N calls through a policy given in the form (not saved)."""
    caller = get_caller(request)
    application, routing = selectors.routing_get(caller=caller, application_id=application_id)
    context: dict[str, Any] = {
        "application": application,
        "routing": routing,
        "model_names": sorted(services.model_names_visible_to(application.team_id)),
        "policies": RoutingPolicyKind.choices,
        "can_change": True,  # nothing is saved here
        "limit": 100,
        "nav_current": NAV,
    }
    status = 200
    if "policy" in request.GET:
        try:
            data = forms.parsed(forms.RoutingSimulationForm(request.GET))
            values = forms.RoutingForm.policy_values(data)
            checked = services.routing_check(application=application, **values)
            context["routing"] = RoutingPolicy(
                application=application,
                policy=checked.policy,
                model=checked.model,
                fallbacks=checked.fallbacks,
                tiers=checked.tiers,
                threshold=checked.threshold,
                max_price=checked.max_price,
            )
            context["limit"] = data["limit"] or 100
            context["simulation"] = selectors.routing_simulate(
                caller=caller,
                application_id=application.id,
                config=routing_config(checked),
                limit=context["limit"],
            )
        except ApplicationError as error:
            context["error"] = error
            status = error.status_code
    else:
        caller.require_permission(roles.VIEW_SPEND, team_id=application.team_id, action="simulate routing costs")
    context["tier_choices"] = _tier_choices(context["routing"])
    return render(request, "gateway/routing_simulate.html", context, status=status)


def routing_config(checked: services.CheckedRouting) -> PolicyConfig:
    return PolicyConfig.from_values(
        policy=checked.policy,
        model=checked.model,
        tiers=checked.tiers,
        threshold=checked.threshold,
        max_price=checked.max_price,
        fallbacks=checked.fallbacks,
    )
