"""The scorer interface shared by offline runs (evaluations) and online monitoring.

A scorer takes one example (input, output, expected, context) and returns a `Score`: a value in
[0, 1] where higher is better, whether it passes the scorer's threshold, an optional label and an
explanation. A scorer that cannot score the example (nothing expected to compare with, a regex
that timed out, an output too large) raises `ScorerError`: callers count these apart from
failures, and never turn them into 0 or NaN.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from evaluations import limits


class ScorerError(Exception):
    """The scorer cannot score this example; `message` says why (and what the example lacks)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Document:
    id: str
    text: str


@dataclass(frozen=True)
class Expected:
    output: str | None = None
    facts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Example:
    """What a scorer looks at. `input` is an item's input ({"messages": [...]} or
    {"variables": {...}}) or plain text; `output` the answer being scored."""

    input: Any
    output: str
    expected: Expected = field(default_factory=Expected)
    context: tuple[Document, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        input: Any,
        output: str,
        expected: str | None = None,
        facts: Sequence[str] = (),
        documents: Sequence[dict[str, Any] | Document] = (),
    ) -> Example:
        docs = tuple(
            document
            if isinstance(document, Document)
            else Document(id=str(document.get("id", "")), text=str(document.get("text", "")))
            for document in documents
        )
        return cls(input=input, output=output, expected=Expected(output=expected, facts=tuple(facts)), context=docs)


@dataclass(frozen=True)
class Score:
    scorer: str
    scorer_version: str
    value: float
    passed: bool
    explanation: str
    label: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.value, (int, float)) or not math.isfinite(self.value) or not 0.0 <= self.value <= 1.0:
            raise ValueError(f"A score must be a finite number in [0, 1], not {self.value!r} ({self.scorer}).")

    def as_dict(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "scorer_version": self.scorer_version,
            "value": self.value,
            "passed": self.passed,
            "label": self.label,
            "explanation": self.explanation,
            "details": self.details,
        }


def input_text(value: Any) -> str:
    """The question of an input: the last user message, or the variables' values, or the text."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        messages = value.get("messages")
        if isinstance(messages, list):
            for message in reversed(messages):
                if isinstance(message, dict) and message.get("role") == "user":
                    return _content_text(message.get("content"))
            return "\n".join(_content_text(message.get("content")) for message in messages if isinstance(message, dict))
        variables = value.get("variables")
        if isinstance(variables, dict):
            return "\n".join(str(item) for item in variables.values() if isinstance(item, (str, int, float)))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class Scorer(ABC):
    """One scorer. Subclasses set `name` and `version` (bump the version whenever the same
    example could score differently) and implement `_score`; `threshold` decides `passed`."""

    name: ClassVar[str]
    version: ClassVar[str]
    default_threshold: ClassVar[float] = 1.0

    def __init__(self, *, threshold: float | None = None) -> None:
        self.threshold = self.default_threshold if threshold is None else threshold

    def score(self, example: Example) -> Score:
        self.check_output(example)
        return self._score(example)

    def check_output(self, example: Example) -> None:
        """Refuse what no scorer should look at (a batch override calls this too)."""
        if len(example.output) > limits.MAX_SCORED_OUTPUT_CHARS:
            raise ScorerError(
                f"The output has {len(example.output):,} characters; scorers look at most "
                f"{limits.MAX_SCORED_OUTPUT_CHARS:,}."
            )

    def score_batch(self, examples: Sequence[Example]) -> list[Score | ScorerError]:
        """One result per example, in order; a scorer that can batch (embeddings) overrides this."""
        results: list[Score | ScorerError] = []
        for example in examples:
            try:
                results.append(self.score(example))
            except ScorerError as error:
                results.append(error)
        return results

    @abstractmethod
    def _score(self, example: Example) -> Score: ...

    def _result(
        self, value: float, explanation: str, *, label: str | None = None, details: dict[str, Any] | None = None
    ) -> Score:
        value = min(1.0, max(0.0, float(value)))
        return Score(
            scorer=self.name,
            scorer_version=self.version,
            value=value,
            passed=value >= self.threshold,
            label=label,
            explanation=explanation,
            details=details or {},
        )
