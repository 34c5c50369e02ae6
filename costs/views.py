"""The Costs page: spend over time, budgets, top spenders and savings, each chart with its
table; htmx filters swap the dashboard section. Reads the same selectors as the API."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts import selectors as account_selectors
from controlplane.api.authentication import get_caller
from controlplane.errors import ApplicationError
from controlplane.htmx import render_page
from costs import charts, permissions, selectors

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
            "recommendations": list(selectors.recommendation_list(caller=caller, team_id=team_id)[:10]),
        }
    )
    return render_page(request, page=PAGE, partial=PARTIAL, context=context)
