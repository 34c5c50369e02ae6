"""Pure functions: experiment results -> chart geometry, drawn as inline SVG by the template
(no JavaScript chart library is installed)."""

from __future__ import annotations

from typing import Any

WIDTH = 360
BAR_HEIGHT = 22
GAP = 10
LEFT = 70


def results_bars(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One horizontal bar chart per metric that has data: mean (or rate) with its 95% interval."""
    charts = []
    for metric in ("score", "success_rate", "latency_ms", "cost_usd"):
        rows = []
        for variant in results["variants"]:
            entry = variant["metrics"][metric]
            value = entry.get("mean", entry.get("rate"))
            if value is None:
                continue
            low, high = entry["ci95"]
            rows.append({"name": variant["name"], "value": value, "low": low, "high": high})
        if not rows:
            continue
        top = max(max(row["value"], row["high"] or row["value"]) for row in rows) or 1.0
        scale = (WIDTH - LEFT - 60) / top
        bars = []
        for index, row in enumerate(rows):
            y = GAP + index * (BAR_HEIGHT + GAP)
            bars.append(
                {
                    **row,
                    "y": y,
                    "text_y": y + BAR_HEIGHT * 0.7,
                    "width": max(row["value"] * scale, 1),
                    "whisker_y": y + BAR_HEIGHT / 2,
                    "whisker_from": LEFT + (row["low"] if row["low"] is not None else row["value"]) * scale,
                    "whisker_to": LEFT + (row["high"] if row["high"] is not None else row["value"]) * scale,
                    "label_x": LEFT + max(row["value"] * scale, 1) + 6,
                }
            )
        charts.append(
            {
                "metric": metric,
                "bars": bars,
                "left": LEFT,
                "width": WIDTH,
                "height": GAP + len(rows) * (BAR_HEIGHT + GAP),
            }
        )
    return charts
