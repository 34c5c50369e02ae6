"""The built-in scorers: each kind's version, description, JSON Schema of its configuration and
factory. `config_problem` checks a configuration once, when it is saved (a bad regex, an invalid
schema: the message names the problem); `build_scorer` makes a scorer from a checked one.

A brand-compliance configuration names a policy version; the caller (evaluations.services)
resolves it to rules and passes them as `rules`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema

from evaluations import limits
from evaluations.scorers.base import Scorer
from evaluations.scorers.brand import BRAND_RULES_SCHEMA, BrandCompliance
from evaluations.scorers.deterministic import (
    Contains,
    ExactMatch,
    JsonSchemaMatch,
    LengthBounds,
    NotContains,
    Refusal,
    RegexMatch,
    ValidJson,
    regex_compile,
)
from evaluations.scorers.jsonschemas import schema_problem
from evaluations.scorers.judge import CONFIG_SCHEMA as JUDGE_CONFIG_SCHEMA
from evaluations.scorers.judge import LlmJudge
from evaluations.scorers.judge import check_config as check_judge_config
from evaluations.scorers.semantic import Correctness, Groundedness, Relevance, SemanticSimilarity
from evaluations.scorers.toxicity import Toxicity
from evaluations.types import ScorerKind

_THRESHOLD = {"type": "number", "minimum": 0, "maximum": 1}
_SIMILARITY = {"type": "number", "minimum": -1, "maximum": 1}
_VALUES = {
    "type": "array",
    "maxItems": 100,
    "items": {"type": "string", "minLength": 1, "maxLength": limits.MAX_POLICY_ENTRY_CHARS},
}
_BOUND = {"type": ["integer", "null"], "minimum": 0, "maximum": limits.MAX_SCORED_OUTPUT_CHARS}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {"threshold": _THRESHOLD, **properties},
        "required": list(required),
    }


@dataclass(frozen=True)
class ScorerSpec:
    kind: str
    scorer_class: type[Scorer]
    description: str
    config_schema: dict[str, Any]
    needs: tuple[str, ...]  # what an example must carry: expected_output, expected_facts, context, input
    check: Callable[[dict[str, Any]], str | None] | None = None

    @property
    def version(self) -> str:
        return self.scorer_class.version

    @property
    def default_threshold(self) -> float:
        return self.scorer_class.default_threshold


def _check_regex(config: dict[str, Any]) -> str | None:
    try:
        regex_compile(config["pattern"], ignore_case=bool(config.get("ignore_case")))
    except ValueError as error:
        return f"pattern: {error}"
    return None


def _check_schema(config: dict[str, Any]) -> str | None:
    problem = schema_problem(config["schema"])
    return f"schema: {problem}" if problem else None


def _check_length(config: dict[str, Any]) -> str | None:
    for unit in ("chars", "words"):
        low, high = config.get(f"min_{unit}"), config.get(f"max_{unit}")
        if low is not None and high is not None and low > high:
            return f"min_{unit} ({low}) is greater than max_{unit} ({high})"
    if all(config.get(name) is None for name in ("min_chars", "max_chars", "min_words", "max_words")):
        return "set at least one of min_chars, max_chars, min_words, max_words"
    return None


def _check_values(config: dict[str, Any]) -> str | None:
    return None if config.get("values") else "values: give at least one value that must not appear"


SPECS: dict[str, ScorerSpec] = {
    spec.kind: spec
    for spec in (
        ScorerSpec(
            ScorerKind.EXACT_MATCH,
            ExactMatch,
            "The output equals the expected output (whitespace collapsed; case optional).",
            _object({"case_sensitive": {"type": "boolean"}, "collapse_whitespace": {"type": "boolean"}}),
            ("expected_output",),
        ),
        ScorerSpec(
            ScorerKind.CONTAINS,
            Contains,
            "The output contains all (or any) of the values; with no values, the expected output.",
            _object({"values": _VALUES, "mode": {"enum": ["all", "any"]}, "case_sensitive": {"type": "boolean"}}),
            (),
        ),
        ScorerSpec(
            ScorerKind.NOT_CONTAINS,
            NotContains,
            "The output contains none of the values.",
            _object({"values": _VALUES, "case_sensitive": {"type": "boolean"}}, ("values",)),
            (),
            _check_values,
        ),
        ScorerSpec(
            ScorerKind.REGEX,
            RegexMatch,
            "The output matches (or, with must_match false, does not match) a regular expression "
            "(regex package syntax, bounded by a timeout).",
            _object(
                {
                    "pattern": {"type": "string", "minLength": 1, "maxLength": limits.MAX_REGEX_CHARS},
                    "mode": {"enum": ["search", "fullmatch"]},
                    "ignore_case": {"type": "boolean"},
                    "must_match": {"type": "boolean"},
                },
                ("pattern",),
            ),
            (),
            _check_regex,
        ),
        ScorerSpec(
            ScorerKind.VALID_JSON,
            ValidJson,
            "The output parses as JSON (a ```json fence allowed unless allow_code_fence is false).",
            _object({"allow_code_fence": {"type": "boolean"}}),
            (),
        ),
        ScorerSpec(
            ScorerKind.JSON_SCHEMA,
            JsonSchemaMatch,
            "The output is JSON matching a JSON Schema (draft 2020-12).",
            _object({"schema": {"type": "object"}, "allow_code_fence": {"type": "boolean"}}, ("schema",)),
            (),
            _check_schema,
        ),
        ScorerSpec(
            ScorerKind.LENGTH,
            LengthBounds,
            "The output's length in characters and/or words is within bounds.",
            _object({"min_chars": _BOUND, "max_chars": _BOUND, "min_words": _BOUND, "max_words": _BOUND}),
            (),
            _check_length,
        ),
        ScorerSpec(
            ScorerKind.REFUSAL,
            Refusal,
            "1 when the output answers (or, with expect_refusal, refuses); the label says which.",
            _object({"expect_refusal": {"type": "boolean"}}),
            (),
        ),
        ScorerSpec(
            ScorerKind.SEMANTIC_SIMILARITY,
            SemanticSimilarity,
            "Cosine similarity of output and expected output (all-MiniLM-L6-v2, local).",
            _object({}),
            ("expected_output",),
        ),
        ScorerSpec(
            ScorerKind.RELEVANCE,
            Relevance,
            "Cosine similarity of the answer to the question (the last user message or the variables).",
            _object({}),
            ("input",),
        ),
        ScorerSpec(
            ScorerKind.CORRECTNESS,
            Correctness,
            "Share of expected facts stated in the answer; each fact found or missing is listed.",
            _object({"fact_threshold": _SIMILARITY, "word_coverage": _THRESHOLD}),
            ("expected_facts",),
        ),
        ScorerSpec(
            ScorerKind.GROUNDEDNESS,
            Groundedness,
            "Share of answer sentences supported by a context document.",
            _object({"sentence_threshold": _SIMILARITY, "word_coverage": _THRESHOLD}),
            ("context",),
        ),
        ScorerSpec(
            ScorerKind.TOXICITY,
            Toxicity,
            "1 - P(toxic) from alt-profanity-check (model in the wheel); toxic at toxic_probability.",
            {"type": "object", "additionalProperties": False, "properties": {"toxic_probability": _THRESHOLD}},
            (),
        ),
        ScorerSpec(
            ScorerKind.BRAND_COMPLIANCE,
            BrandCompliance,
            "Share of a brand policy's applicable rules that hold; names each failed rule.",
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["policy"],
                "properties": {
                    "policy": {"type": "integer", "minimum": 1, "maximum": limits.MAX_JSON_INTEGER},
                    "policy_version": {"type": ["integer", "null"], "minimum": 1, "maximum": 2**31 - 1},
                },
            },
            (),
        ),
        ScorerSpec(
            ScorerKind.LLM_JUDGE,
            LlmJudge,
            "A prompt of the registry grades the answer through the gateway: JSON {score in [0, 1], reason}; "
            "unparsable answers are asked again, then an error; repeats > 1 reports the judges' spread.",
            JUDGE_CONFIG_SCHEMA,
            (),
            check_judge_config,
        ),
    )
}


def spec_for(kind: str) -> ScorerSpec:
    try:
        return SPECS[kind]
    except KeyError:
        raise ValueError(f"kind {kind!r} is not a scorer; use one of: {', '.join(SPECS)}") from None


def config_problem(kind: str, config: Any) -> str | None:
    """What is wrong with `config` for a scorer of `kind` (naming the field), or None."""
    try:
        spec = spec_for(kind)
    except ValueError as error:
        return str(error)
    validator = jsonschema.Draft202012Validator(spec.config_schema)
    found = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if found is not None:
        where = ".".join(str(part) for part in found.absolute_path)
        return f"{where + ': ' if where else ''}{found.message[:300]}"
    return spec.check(config) if spec.check is not None else None


def brand_rules_problem(rules: Any) -> str | None:
    validator = jsonschema.Draft202012Validator(BRAND_RULES_SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(rules))
    if error is None:
        return None
    where = ".".join(str(part) for part in error.absolute_path)
    return f"{where + ': ' if where else ''}{error.message[:300]}"


def build_scorer(
    kind: str, config: dict[str, Any], *, brand_rules: dict[str, Any] | None = None, policy_label: str = ""
) -> Scorer:
    """A scorer from a configuration that passed `config_problem` (brand rules resolved by the caller)."""
    spec = spec_for(kind)
    options = dict(config)
    if kind == ScorerKind.BRAND_COMPLIANCE:
        if brand_rules is None:
            raise ValueError("a brand_compliance scorer needs the policy's rules")
        return BrandCompliance(rules=brand_rules, policy_label=policy_label, threshold=options.get("threshold"))
    return spec.scorer_class(**options)


def builtin_scorer(kind: str) -> Scorer:
    """A built-in scorer with its default configuration (not for kinds whose configuration is required)."""
    return build_scorer(kind, {})
