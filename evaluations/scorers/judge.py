"""LLM as judge: a prompt of the registry, called through the gateway, grades an answer.

The judge's prompt is a prompt like any other (versioned, diffable, labelled); it is rendered
by the gateway with the variables `input`, `output`, `expected`, `facts`, `context` and
`rubric` (those its version declares), and must answer with JSON only: {"score": <number in [0, 1]>, "reason": "<why>"}
(a ```json fence is tolerated). An answer that does not parse, or breaks the schema, is asked
again up to `max_attempts` times; after that the judge raises ScorerError (counted as an error,
never as a 0). With `repeats` k > 1 the judge is asked k times and the score is their mean; the
spread (max - min) is kept, so a flaky judge shows.

A judge scores only when bound to a gateway caller (`bind`): an eval run binds it to its
dedicated key, so the judge's calls are recorded, costed and budgeted like the target's.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson

from evaluations import limits
from evaluations.scorers.base import Example, Score, Scorer, ScorerError, input_text

JUDGE_VARIABLES = ("input", "output", "expected", "facts", "context", "rubric")
JUDGE_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["score", "reason"],
    "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1}, "reason": {"type": "string"}},
}
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)

# (body) -> an object with .text, .cost_usd, .call_id (evaluations.gateway_client.Completion)
JudgeCall = Callable[[dict[str, Any]], Awaitable[Any]]


class JudgeCallFailed(Exception):
    """Raised by a bound call when the gateway refused or failed (message says why)."""


def parse_verdict(text: str) -> tuple[float, str]:
    """(score, reason) from a judge's answer; ValueError naming what is wrong."""
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text.strip()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError(f"not JSON: {text[:120]!r}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    extra = sorted(set(data) - {"score", "reason"})
    if extra:
        raise ValueError(f"unexpected field(s) {', '.join(extra)}; only score and reason are allowed")
    score, reason = data.get("score"), data.get("reason")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        raise ValueError(f"score must be a number in [0, 1], got {score!r}")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("reason must be a non-empty string")
    return float(score), reason.strip()


class LlmJudge(Scorer):
    name = "llm_judge"
    version = "1"
    default_threshold = 0.5

    def __init__(
        self,
        *,
        prompt: str,
        label: str | None = None,
        version: int | None = None,
        model: str | None = None,
        rubric: str = "",
        repeats: int = 1,
        max_attempts: int = 3,
        temperature: float | None = None,
        variables: list[str] | None = None,
        threshold: float | None = None,
    ) -> None:
        super().__init__(threshold=threshold)
        self.prompt = prompt
        self.label = label
        self.prompt_version = version
        self.model = model
        self.rubric = rubric
        self.repeats = repeats
        self.max_attempts = max_attempts
        self.temperature = temperature
        # The variables the pinned judge prompt declares (a prompt refuses others); None: all.
        self.variables = JUDGE_VARIABLES if variables is None else tuple(variables)
        self._call: JudgeCall | None = None

    def bind(self, call: JudgeCall) -> LlmJudge:
        self._call = call
        return self

    def _body(self, example: Example) -> dict[str, Any]:
        reference: dict[str, Any] = {"name": self.prompt}
        if self.prompt_version is not None:
            reference["version"] = self.prompt_version
        elif self.label:
            reference["label"] = self.label
        values = {
            "input": input_text(example.input),
            "output": example.output,
            "expected": example.expected.output or "",
            "facts": "\n".join(f"- {fact}" for fact in example.expected.facts),
            "context": "\n\n".join(f"[{document.id}] {document.text}" for document in example.context),
            "rubric": self.rubric,
        }
        reference["variables"] = {name: value for name, value in values.items() if name in self.variables}
        body: dict[str, Any] = {"model": self.model, "messages": [], "prompt": reference}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    async def ascore(self, example: Example) -> Score:
        if self._call is None or not self.model:
            raise ScorerError("An LLM judge scores inside an eval run, which calls it through the gateway.")
        self.check_output(example)
        body = self._body(example)
        samples: list[float] = []
        reasons: list[str] = []
        call_ids: list[str] = []
        cost = Decimal(0)
        for _ in range(self.repeats):
            problem = ""
            for _attempt in range(self.max_attempts):
                try:
                    answer = await self._call(body)
                except JudgeCallFailed as failure:
                    raise ScorerError(f"The judge could not be called: {failure}") from None
                cost += answer.cost_usd or 0
                call_ids.append(answer.call_id)
                try:
                    score, reason = parse_verdict(answer.text)
                except ValueError as error:
                    problem = str(error)
                    continue
                samples.append(score)
                reasons.append(reason[:2000])
                break
            else:
                raise ScorerError(
                    f"The judge's answer broke the output schema {{score, reason}} {self.max_attempts} times "
                    f"(last: {problem})."
                )
        value = statistics.fmean(samples)
        spread = max(samples) - min(samples)
        return self._result(
            value,
            reasons[0] if len(reasons) == 1 else f"{len(samples)} judgements (spread {spread:.2f}): {reasons[0]}",
            details={
                "samples": samples,
                "reasons": reasons,
                "spread": spread,
                "stdev": statistics.pstdev(samples) if len(samples) > 1 else 0.0,
                "cost_usd": str(cost),
                "call_ids": call_ids,
            },
        )

    def _score(self, example: Example) -> Score:
        if self._call is None:
            raise ScorerError("An LLM judge scores inside an eval run, which calls it through the gateway.")
        return asyncio.run(self.ascore(example))


CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["prompt"],
    "properties": {
        "threshold": {"type": "number", "minimum": 0, "maximum": 1},
        "prompt": {"type": "string", "minLength": 1, "maxLength": limits.MAX_NAME_CHARS},
        "label": {"type": ["string", "null"], "minLength": 1, "maxLength": 64},
        "version": {"type": ["integer", "null"], "minimum": 1, "maximum": 2**31 - 1},
        "model": {"type": ["string", "null"], "minLength": 1, "maxLength": 256},
        "rubric": {"type": "string", "maxLength": limits.MAX_RUBRIC_CHARS},
        "repeats": {"type": "integer", "minimum": 1, "maximum": limits.MAX_JUDGE_REPEATS},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": limits.MAX_JUDGE_ATTEMPTS},
        "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
        "variables": {"type": "array", "maxItems": len(JUDGE_VARIABLES), "items": {"enum": list(JUDGE_VARIABLES)}},
    },
}


def check_config(config: dict[str, Any]) -> str | None:
    if config.get("label") and config.get("version"):
        return "give label or version, not both"
    return None
