"""Brand compliance against a team's brand policy (a versioned artefact, evaluations.models.BrandPolicy).

Rules (each optional):
- forbidden_phrases, competitors: must not appear (whole words, any case);
- required_disclaimers: [{topic_keywords, disclaimer}]: when the answer mentions a topic keyword
  (or the question does), the disclaimer text must appear;
- reading_level: {min_grade, max_grade}: the Flesch-Kincaid grade, computed in code;
- tone: {max_exclamation_marks, max_all_caps_words};
- allowed_claims: a sentence that makes a claim (contains a claim marker such as "guarantee",
  "best", "100%") must contain one of the allowed claims.
The score is the share of the checked rules that hold; it passes only when all hold, and the
explanation names each rule that failed and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import regex

from evaluations import limits
from evaluations.scorers import text
from evaluations.scorers.base import Example, Score, Scorer, ScorerError, input_text

DEFAULT_CLAIM_MARKERS = (
    "guarantee",
    "guaranteed",
    "best",
    "cheapest",
    "fastest",
    "#1",
    "number one",
    "100%",
    "risk-free",
    "never fails",
    "always works",
    "cure",
    "certified",
    "proven",
)

_STRINGS = {
    "type": "array",
    "maxItems": limits.MAX_POLICY_ENTRIES,
    "items": {"type": "string", "minLength": 1, "maxLength": limits.MAX_POLICY_ENTRY_CHARS},
}
_GRADE = {"type": ["number", "null"], "minimum": -5, "maximum": 30}
_COUNT = {"type": ["integer", "null"], "minimum": 0, "maximum": 10_000}
BRAND_RULES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "forbidden_phrases": _STRINGS,
        "competitors": _STRINGS,
        "required_disclaimers": {
            "type": "array",
            "maxItems": limits.MAX_POLICY_ENTRIES,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["topic_keywords", "disclaimer"],
                "properties": {
                    "topic_keywords": {**_STRINGS, "minItems": 1},
                    "disclaimer": {"type": "string", "minLength": 1, "maxLength": limits.MAX_POLICY_ENTRY_CHARS},
                },
            },
        },
        "reading_level": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"min_grade": _GRADE, "max_grade": _GRADE},
        },
        "tone": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"max_exclamation_marks": _COUNT, "max_all_caps_words": _COUNT},
        },
        "allowed_claims": _STRINGS,
        "claim_markers": _STRINGS,
    },
}


def _phrase_pattern(phrases: list[str]) -> regex.Pattern[str] | None:
    if not phrases:
        return None
    alternatives = "|".join(regex.escape(" ".join(phrase.split())).replace(r"\ ", r"\s+") for phrase in phrases)
    return regex.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", flags=regex.IGNORECASE)


def _found(pattern: regex.Pattern[str] | None, haystack: str) -> list[str]:
    if pattern is None:
        return []
    try:
        return sorted(
            {match.group(0).lower() for match in pattern.finditer(haystack, timeout=limits.REGEX_TIMEOUT_SECONDS)}
        )
    except TimeoutError:
        raise ScorerError("Matching the brand policy's phrases took too long on this output.") from None


@dataclass(frozen=True)
class Failure:
    rule: str
    detail: str


class BrandCompliance(Scorer):
    name = "brand_compliance"
    version = "1"
    default_threshold = 1.0

    def __init__(self, *, rules: dict[str, Any], policy_label: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rules = rules
        self.policy_label = policy_label
        self.forbidden = _phrase_pattern(list(rules.get("forbidden_phrases", [])))
        self.competitors = _phrase_pattern(list(rules.get("competitors", [])))
        self.disclaimers = [
            (_phrase_pattern(list(entry["topic_keywords"])), entry["disclaimer"])
            for entry in rules.get("required_disclaimers", [])
        ]
        self.claim_markers = _phrase_pattern(list(rules.get("claim_markers") or DEFAULT_CLAIM_MARKERS))
        self.allowed_claims = [" ".join(claim.lower().split()) for claim in rules.get("allowed_claims", [])]

    def _checks(self, example: Example) -> tuple[int, list[Failure]]:
        output = example.output
        checked, failures = 0, []
        if self.forbidden is not None:
            checked += 1
            if found := _found(self.forbidden, output):
                failures.append(Failure("forbidden_phrases", f"uses forbidden phrase(s): {', '.join(found)}"))
        if self.competitors is not None:
            checked += 1
            if found := _found(self.competitors, output):
                failures.append(Failure("competitors", f"names competitor(s): {', '.join(found)}"))
        normalised_output = " ".join(output.lower().split())
        question = input_text(example.input)
        for topics, disclaimer in self.disclaimers:
            topic = _found(topics, output) or _found(topics, question)
            if topic:
                checked += 1
                if " ".join(disclaimer.lower().split()) not in normalised_output:
                    failures.append(
                        Failure(
                            "required_disclaimers", f"mentions {topic[0]!r} without the disclaimer {disclaimer[:100]!r}"
                        )
                    )
        reading = self.rules.get("reading_level") or {}
        low, high = reading.get("min_grade"), reading.get("max_grade")
        grade = text.flesch_kincaid_grade(output) if low is not None or high is not None else None
        if grade is not None:
            checked += 1
            if low is not None and grade < low:
                failures.append(
                    Failure("reading_level", f"Flesch-Kincaid grade {grade:.1f} is below the minimum {low}")
                )
            elif high is not None and grade > high:
                failures.append(
                    Failure("reading_level", f"Flesch-Kincaid grade {grade:.1f} is above the maximum {high}")
                )
        tone = self.rules.get("tone") or {}
        if tone.get("max_exclamation_marks") is not None:
            checked += 1
            if (count := output.count("!")) > tone["max_exclamation_marks"]:
                failures.append(Failure("tone", f"{count} exclamation marks (at most {tone['max_exclamation_marks']})"))
        if tone.get("max_all_caps_words") is not None:
            checked += 1
            shouting = [word for word in text.words(output) if len(word) >= 3 and word.isupper() and word.isalpha()]
            if len(shouting) > tone["max_all_caps_words"]:
                failures.append(
                    Failure(
                        "tone",
                        f"{len(shouting)} words in capitals (at most {tone['max_all_caps_words']}): "
                        f"{', '.join(shouting[:5])}",
                    )
                )
        if "allowed_claims" in self.rules:
            checked += 1
            for sentence in text.sentences(output):
                if _found(self.claim_markers, sentence):
                    normalised = " ".join(sentence.lower().split())
                    if not any(claim in normalised for claim in self.allowed_claims):
                        failures.append(Failure("allowed_claims", f"unapproved claim: {sentence[:150]!r}"))
                        break
        return checked, failures

    def _score(self, example: Example) -> Score:
        checked, failures = self._checks(example)
        if checked == 0:
            return self._result(
                1.0, "No rule of the policy applies to this output.", label="compliant", details={"failed_rules": []}
            )
        failed_rules = sorted({failure.rule for failure in failures})
        value = (checked - len(failures)) / checked
        if failures:
            explanation = "Fails: " + "; ".join(f"{failure.rule}: {failure.detail}" for failure in failures) + "."
        else:
            explanation = f"All {checked} applicable rules hold."
        if self.policy_label:
            explanation = f"{self.policy_label}: {explanation}"
        return Score(
            scorer=self.name,
            scorer_version=self.version,
            value=max(0.0, value),
            passed=not failures,
            label="violation" if failures else "compliant",
            explanation=explanation,
            details={
                "failed_rules": failed_rules,
                "failures": [{"rule": failure.rule, "detail": failure.detail} for failure in failures],
                "rules_checked": checked,
            },
        )
