"""Pure functions: selector output -> plotly figures (as dicts for `json_script`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import plotly.graph_objects as go

from costs.selectors import BudgetStatus

_LAYOUT: dict[str, Any] = {"margin": {"l": 60, "r": 20, "t": 40, "b": 40}, "height": 320, "template": "plotly_white"}


def _figure(figure: go.Figure) -> dict[str, Any]:
    return dict(figure.to_plotly_json())


def spend_over_time(summary: dict[str, Any], *, top: int = 8) -> dict[str, Any]:
    """Stacked bars of spend per bucket, one trace per group (the top `top`, the rest as 'other')."""
    leaders = [group["group"] for group in summary["groups"][:top]]
    labels = {group["group"]: group["label"] for group in summary["groups"]}
    buckets = sorted({row["bucket"] for row in summary["series"]})
    values: dict[str, dict[str, float]] = {}
    for row in summary["series"]:
        name = row["group"] if row["group"] in leaders else "other"
        series = values.setdefault(name, {})
        series[row["bucket"]] = series.get(row["bucket"], 0.0) + float(row["cost_usd"])
    figure = go.Figure()
    for name in [*leaders, "other"]:
        if name in values:
            figure.add_bar(
                x=buckets, y=[values[name].get(bucket, 0.0) for bucket in buckets], name=labels.get(name, name)
            )
    figure.update_layout(barmode="stack", title=f"Spend by {summary['group_by']} (USD)", **_LAYOUT)
    return _figure(figure)


def budgets(statuses: list[BudgetStatus]) -> dict[str, Any]:
    """Each budget's period-to-date spend against its limit, with the linear forecast to period end."""
    names = [f"{status.budget.name} ({status.budget.period})" for status in statuses]
    figure = go.Figure()
    figure.add_bar(y=names, x=[float(status.spent_usd) for status in statuses], name="spent", orientation="h")
    figure.add_bar(y=names, x=[float(status.reserved_usd) for status in statuses], name="reserved", orientation="h")
    figure.add_scatter(
        y=names,
        x=[float(status.forecast_usd) if status.forecast_usd is not None else None for status in statuses],
        name="forecast at period end",
        mode="markers",
        marker={"symbol": "diamond", "size": 12},
    )
    figure.add_scatter(
        y=names,
        x=[float(status.limit_usd) for status in statuses],
        name="limit",
        mode="markers",
        marker={"symbol": "line-ns-open", "size": 24, "line": {"width": 3}},
    )
    figure.update_layout(barmode="stack", title="Budgets: period to date (USD)", **_LAYOUT)
    return _figure(figure)


def top(summary: dict[str, Any], *, title: str, limit: int = 10) -> dict[str, Any]:
    groups = list(reversed(summary["groups"][:limit]))
    figure = go.Figure()
    figure.add_bar(
        y=[group["label"] for group in groups], x=[float(group["cost_usd"]) for group in groups], orientation="h"
    )
    figure.update_layout(title=title, **_LAYOUT)
    return _figure(figure)


def savings(summary: dict[str, Any]) -> dict[str, Any]:
    """Money saved per bucket by the cache and by routing."""
    buckets = sorted({row["bucket"] for row in summary["series"]})
    cache: dict[str, Decimal] = dict.fromkeys(buckets, Decimal(0))
    routing: dict[str, Decimal] = dict.fromkeys(buckets, Decimal(0))
    for row in summary["series"]:
        cache[row["bucket"]] += Decimal(row["cache_saved_usd"])
        routing[row["bucket"]] += Decimal(row["routing_saved_usd"])
    figure = go.Figure()
    figure.add_bar(x=buckets, y=[float(cache[bucket]) for bucket in buckets], name="cache")
    figure.add_bar(x=buckets, y=[float(routing[bucket]) for bucket in buckets], name="routing")
    figure.update_layout(barmode="stack", title="Savings (USD)", **_LAYOUT)
    return _figure(figure)
