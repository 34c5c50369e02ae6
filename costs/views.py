"""The Costs pages: spend over time, budgets, top spenders and savings, each chart with its
table; htmx filters swap the dashboard section. Reads the same selectors as the API.

The budgets page (/costs/budgets/) lets managers and admins create, edit and delete budgets
over costs.services; each htmx form posts to its own endpoint and gets back the budgets
section with field errors and the status of a failure (400, 403), or 201 with the webhook
secret shown once. The notifications page lists the team's in-app alerts and marks them read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from accounts import selectors as account_selectors
from accounts.authentication import get_caller
from accounts.caller import Caller
from core.dates import RANGE_MESSAGE, is_supported
from core.errors import ApplicationError, NotFound
from core.htmx import render_page
from core.pages import page_action
from costs import charts, permissions, selectors, services
from costs.forms import BudgetCreateForm, BudgetUpdateForm, budget_initial
from costs.models import Budget

PAGE = "costs/dashboard.html"
PARTIAL = "costs/partials/_dashboard.html"


class FilterForm(forms.Form):
    team = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    group_by = forms.ChoiceField(
        choices=[("model", "Model"), ("application", "Application"), ("team", "Team")], required=False
    )
    interval = forms.ChoiceField(choices=[("day", "Day"), ("hour", "Hour")], required=False)
    start = forms.DateField(required=False, label="From")
    end = forms.DateField(required=False, label="To")

    def __init__(self, *args: Any, teams: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        team_field = self.fields["team"]
        assert isinstance(team_field, forms.TypedChoiceField)
        team_field.choices = [("", "All my teams"), *teams]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        for name, value in (("start", start), ("end", end)):
            if value and not is_supported(value):
                self.add_error(name, f"The date {RANGE_MESSAGE}.")
        if start and end and start > end:
            self.add_error("start", "From must be on or before To.")
        return data


def _day_start(value: Any) -> datetime:
    return datetime.combine(value, time.min, tzinfo=UTC)


@login_required
@require_http_methods(["GET", "HEAD"])
def dashboard(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    teams = [
        (team.id, team.name)
        for team in account_selectors.team_list(caller=caller).order_by("name")
        if caller.has_permission(permissions.VIEW_SPEND, team_id=team.id)
    ]
    form = FilterForm(request.GET or None, teams=teams)
    context: dict[str, Any] = {"form": form, "nav_current": "costs", "teams": teams}
    if request.GET and not form.is_valid():
        return render_page(request, page=PAGE, partial=PARTIAL, context=context, status=400)
    data = form.cleaned_data if form.is_bound else {}
    today = timezone.now().date()
    end = _day_start(data.get("end") or today) + timedelta(days=1)
    start = _day_start(data.get("start") or today - timedelta(days=29))
    interval = data.get("interval") or "day"
    group_by = data.get("group_by") or "model"
    team_id = data.get("team")
    try:
        queries = {
            name: selectors.summary_query(
                caller=caller, group_by=name, start=start, end=end, interval=interval, team_id=team_id
            )
            for name in {group_by, "model", "user", "prompt"}
        }
    except ApplicationError as error:
        context["error"] = error.message
        return render_page(request, page=PAGE, partial=PARTIAL, context=context, status=error.status_code)
    summaries = {name: selectors.cost_summary(query=query) for name, query in queries.items()}
    statuses = selectors.budget_statuses(caller=caller, team_id=team_id)
    main = summaries[group_by]
    context.update(
        {
            "summary": main,
            "statuses": statuses,
            "tops": [
                ("models", summaries["model"]),
                ("end users", summaries["user"]),
                ("prompts", summaries["prompt"]),
            ],
            "charts": {
                "spend": charts.spend_over_time(main),
                "budgets": charts.budgets(statuses),
                "top_models": charts.top(summaries["model"], title="Top models by cost (USD)"),
                "top_users": charts.top(summaries["user"], title="Top end users by cost (USD)"),
                "top_prompts": charts.top(summaries["prompt"], title="Top prompts by cost (USD)"),
                "savings": charts.savings(main),
            },
            "notifications": list(selectors.notification_list(caller=caller, team_id=team_id)[:10]),
            "unread_count": selectors.notification_list(caller=caller, team_id=team_id)
            .filter(read_at__isnull=True)
            .count(),
            "recommendations": list(selectors.recommendation_list(caller=caller, team_id=team_id)[:10]),
        }
    )
    return render_page(request, page=PAGE, partial=PARTIAL, context=context)


# Budgets: /costs/budgets/ ----------------------------------------------------------------

BUDGETS_PAGE = "costs/budgets.html"
BUDGETS_SECTION = "costs/partials/_budgets.html"


@dataclass(frozen=True)
class NewBudget:
    """A budget just created, with its webhook signing secret: rendered in that one response, never stored."""

    budget: Budget
    secret: str


@dataclass(frozen=True)
class BudgetRow:
    status: selectors.BudgetStatus
    can_change: bool
    can_delete: bool
    form: BudgetUpdateForm | None


def _budgets_context(
    caller: Caller,
    *,
    create_form: BudgetCreateForm | None = None,
    edit_form: tuple[int, BudgetUpdateForm] | None = None,
    new_budget: NewBudget | None = None,
    notice: str = "",
    error: str = "",
) -> dict[str, Any]:
    teams = list(account_selectors.team_list(caller=caller).order_by("name"))
    visible = [team for team in teams if caller.has_permission(permissions.VIEW_BUDGET, team_id=team.id)]
    addable = [
        (team.id, team.name) for team in visible if caller.has_permission(permissions.ADD_BUDGET, team_id=team.id)
    ]
    rows = []
    for status in selectors.budget_statuses(caller=caller) if visible else []:
        budget = status.budget
        can_change = caller.has_permission(permissions.CHANGE_BUDGET, team_id=budget.team_id)
        form = None
        if can_change:
            if edit_form is not None and edit_form[0] == budget.id:
                form = edit_form[1]
            else:
                form = BudgetUpdateForm(initial=budget_initial(budget), budget_id=budget.id)
        rows.append(
            BudgetRow(
                status=status,
                can_change=can_change,
                can_delete=caller.has_permission(permissions.DELETE_BUDGET, team_id=budget.team_id),
                form=form,
            )
        )
    create_form = create_form or BudgetCreateForm()
    create_form.offer_teams(addable)
    return {
        "nav_current": "costs",
        "rows": rows,
        "can_create": bool(addable),
        "create_form": create_form,
        "new_budget": new_budget,
        "notice": notice,
        "error": error,
    }


def _budgets_response(request: HttpRequest, context: dict[str, Any], *, status: int = 200) -> HttpResponse:
    response = render_page(request, page=BUDGETS_PAGE, partial=BUDGETS_SECTION, context=context, status=status)
    add_never_cache_headers(response)
    return response


@login_required
@require_http_methods(["GET", "HEAD"])
def budget_list(request: HttpRequest) -> HttpResponse:
    return _budgets_response(request, _budgets_context(get_caller(request)))


@login_required
@require_http_methods(["POST"])
def budget_create(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    form = BudgetCreateForm(request.POST)

    def create() -> tuple[Budget, str]:
        data = dict(form.cleaned_data)
        team = account_selectors.team_get(caller=caller, team_id=data.pop("team"))
        return services.budget_create(caller=caller, team=team, **data)

    def created(created: tuple[Budget, str]) -> HttpResponse:
        budget, secret = created
        # No redirect, even for a plain post: the secret exists only in this response.
        new_budget = NewBudget(budget=budget, secret=secret)
        context = _budgets_context(caller, new_budget=new_budget, notice=f"Created the budget {budget.name}.")
        return _budgets_response(request, context, status=201)

    response = page_action(
        request,
        create,
        form=form,
        success=created,
        context=lambda refusal: _budgets_context(caller, create_form=form, error=refusal.message),
        page=BUDGETS_PAGE,
        partial=BUDGETS_SECTION,
        propagate=(NotFound,),  # another team's: 404
    )
    add_never_cache_headers(response)
    return response


@login_required
@require_http_methods(["POST"])
def budget_update(request: HttpRequest, budget_id: int) -> HttpResponse:
    caller = get_caller(request)
    budget = selectors.budget_get(caller=caller, budget_id=budget_id)  # another team's: 404
    form = BudgetUpdateForm(request.POST, initial=budget_initial(budget), budget_id=budget.id)
    response = page_action(
        request,
        lambda: services.budget_update(
            caller=caller, budget=budget, **{name: form.cleaned_data[name] for name in form.changed_data}
        ),
        form=form,
        success=lambda budget: _budgets_response(
            request, _budgets_context(caller, notice=f"Saved the budget {budget.name}.")
        ),
        context=lambda refusal: _budgets_context(caller, edit_form=(budget_id, form), error=refusal.message),
        page=BUDGETS_PAGE,
        partial=BUDGETS_SECTION,
    )
    add_never_cache_headers(response)
    return response


@login_required
@require_http_methods(["POST"])
def budget_delete(request: HttpRequest, budget_id: int) -> HttpResponse:
    caller = get_caller(request)
    budget = selectors.budget_get(caller=caller, budget_id=budget_id)  # another team's: 404
    name = budget.name
    response = page_action(
        request,
        lambda: services.budget_delete(caller=caller, budget=budget),
        success=lambda _: _budgets_response(request, _budgets_context(caller, notice=f"Deleted the budget {name}.")),
        context=lambda refusal: _budgets_context(
            caller, error=f"Could not delete the budget {name}: {refusal.message}"
        ),
        page=BUDGETS_PAGE,
        partial=BUDGETS_SECTION,
    )
    add_never_cache_headers(response)
    return response


# Notifications: /costs/notifications/ -------------------------------------------------------

NOTIFICATIONS_PAGE = "costs/notifications.html"
NOTIFICATIONS_SECTION = "costs/partials/_notifications.html"
NOTIFICATIONS_SHOWN = 100


def _notifications_context(caller: Caller, *, notice: str = "") -> dict[str, Any]:
    notifications = selectors.notification_list(caller=caller)
    return {
        "nav_current": "costs",
        "notifications": list(notifications.select_related("team")[:NOTIFICATIONS_SHOWN]),
        "unread_count": notifications.filter(read_at__isnull=True).count(),
        "notice": notice,
    }


def _notifications_response(request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
    return render_page(request, page=NOTIFICATIONS_PAGE, partial=NOTIFICATIONS_SECTION, context=context)


@login_required
@require_http_methods(["GET", "HEAD"])
def notification_list(request: HttpRequest) -> HttpResponse:
    return _notifications_response(request, _notifications_context(get_caller(request)))


@login_required
@require_http_methods(["POST"])
def notification_read(request: HttpRequest, notification_id: int) -> HttpResponse:
    caller = get_caller(request)
    notification = selectors.notification_get(caller=caller, notification_id=notification_id)  # 404 if hidden
    services.notification_mark_read(caller=caller, team_id=notification.team_id, notification_ids=[notification.id])
    return _notifications_response(request, _notifications_context(caller, notice="Marked as read."))


@login_required
@require_http_methods(["POST"])
def notification_read_all(request: HttpRequest) -> HttpResponse:
    caller = get_caller(request)
    unread = selectors.notification_list(caller=caller).filter(read_at__isnull=True)
    by_team: dict[int, list[int]] = {}
    for team_id, notification_id in unread.values_list("team_id", "id"):
        by_team.setdefault(team_id, []).append(notification_id)
    marked = sum(
        services.notification_mark_read(caller=caller, team_id=team_id, notification_ids=ids)
        for team_id, ids in by_team.items()
    )
    return _notifications_response(
        request, _notifications_context(caller, notice=f"Marked {marked} notification{pluralize(marked)} as read.")
    )
