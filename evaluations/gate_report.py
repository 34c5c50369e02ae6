"""A gate's verdict as markdown, fit for a pull-request comment (what `eval_gate --report` writes)
and as a JSON body (what POST /api/v1/evaluations/gate/ answers): the same facts in both.

No item's text is written: a comment on a pull request is read by people whose clearance the
gate does not know; the worst regressions are named by item key and scores only.
"""

from __future__ import annotations

from typing import Any

from evaluations import paired
from evaluations.services.gates import GateVerdict
from evaluations.types import GateCheckStatus

_HEADLINE: dict[str, str] = {
    GateCheckStatus.PASSED: "✅ passed",
    GateCheckStatus.FAILED: "❌ failed",
    GateCheckStatus.PENDING: "⏳ pending",
}


def _number(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def verdict_markdown(verdict: GateVerdict) -> str:
    gate = verdict.gate
    prompt_name = gate.prompt.name
    current = f"v{verdict.current.number}" if verdict.current is not None else "nothing yet"
    lines = [
        f"## Evaluation gate: {_HEADLINE.get(verdict.status, verdict.status)}",
        "",
        f"**{prompt_name}** v{verdict.candidate.number} against `{gate.label}` (now {current}), "
        f"dataset **{gate.dataset.name}** v{verdict.dataset_version}.",
    ]
    runs = []
    if verdict.candidate_run is not None:
        runs.append(f"candidate run {verdict.candidate_run.pk} ({verdict.candidate_run.status})")
    if verdict.current_run is not None:
        runs.append(f"current run {verdict.current_run.pk} ({verdict.current_run.status})")
    if runs:
        lines += ["", "Runs: " + ", ".join(runs) + "."]
    if verdict.reasons:
        lines += ["", "### Reasons", ""] + [f"- {reason}" for reason in verdict.reasons]
    if verdict.scorers:
        lines += [
            "",
            "### Scorers",
            "",
            "| scorer | minimum | candidate | current | difference (95% CI) | pass rate | McNemar p | verdict |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in verdict.scorers:
            comparison = row.comparison
            difference = "-"
            pass_rate = "-"  # noqa: S105  # a table cell, not a password
            p_value = "-"
            word = "meets the minimum" if row.passed else "fails"
            if comparison is not None:
                difference = _number(comparison.difference, signed=True)
                if comparison.interval is not None:
                    difference += f" ({comparison.interval.low:+.3f} to {comparison.interval.high:+.3f})"
                if comparison.baseline_pass_rate is not None and comparison.candidate_pass_rate is not None:
                    pass_rate = f"{comparison.baseline_pass_rate:.0%} → {comparison.candidate_pass_rate:.0%}"
                if comparison.mcnemar is not None:
                    p_value = f"{comparison.mcnemar.p_value:.3g}"
                word = comparison.summary
                if comparison.verdict == paired.WORSE:
                    word = f"**{word}**"
            lines.append(
                f"| {row.name} | {_number(row.min_score)} | {_number(row.candidate_mean)} | "
                f"{_number(row.current_mean)} | {difference} | {pass_rate} | {p_value} | {word} |"
            )
    if verdict.worst_regressions:
        lines += [
            "",
            "### Worst regressions",
            "",
            "| item | scorer | current | candidate | change |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| `{change.item_key}` | {change.scorer} | {_number(change.baseline.score)} | "
            f"{_number(change.candidate.score)} | {_number(change.delta, signed=True)} |"
            for change in verdict.worst_regressions
        ]
    if verdict.check is not None:
        lines += ["", f"<sub>Gate {gate.pk}, check {verdict.check.pk}.</sub>"]
    return "\n".join(lines) + "\n"


def _interval(comparison: Any) -> list[float] | None:
    interval = comparison.interval if comparison is not None else None
    return [interval.low, interval.high] if interval is not None else None


def verdict_body(verdict: GateVerdict) -> dict[str, Any]:
    return {
        "status": verdict.status,
        "passed": verdict.status == GateCheckStatus.PASSED,
        "gate": verdict.gate.pk,
        "check": verdict.check.pk if verdict.check is not None else None,
        "prompt": verdict.gate.prompt.name,
        "label": verdict.gate.label,
        "candidate_version": verdict.candidate.number,
        "current_version": verdict.current.number if verdict.current is not None else None,
        "dataset": verdict.gate.dataset_id,
        "dataset_version": verdict.dataset_version,
        "candidate_run": verdict.candidate_run.pk if verdict.candidate_run is not None else None,
        "current_run": verdict.current_run.pk if verdict.current_run is not None else None,
        "started_runs": verdict.started_runs,
        "reasons": verdict.reasons,
        "scorers": [
            {
                "name": row.name,
                "min_score": row.min_score,
                "candidate_mean": row.candidate_mean,
                "current_mean": row.current_mean,
                "difference": row.comparison.difference if row.comparison is not None else None,
                "interval": _interval(row.comparison),
                "mcnemar_p": row.comparison.mcnemar.p_value
                if row.comparison is not None and row.comparison.mcnemar is not None
                else None,
                "verdict": row.comparison.verdict if row.comparison is not None else None,
                "passed": row.passed,
            }
            for row in verdict.scorers
        ],
        "worst_regressions": [
            {
                "item": str(change.item_key),
                "scorer": change.scorer,
                "current_score": change.baseline.score,
                "candidate_score": change.candidate.score,
                "delta": change.delta,
            }
            for change in verdict.worst_regressions
        ],
        "report_markdown": verdict_markdown(verdict),
    }
