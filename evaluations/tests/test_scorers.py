"""The scorer library: each scorer's behaviour, its errors (never a silent 0), and configuration checks."""

from __future__ import annotations

import math

import pytest

from evaluations.scorers import Example, Score, ScorerError, build_scorer, config_problem
from evaluations.scorers.brand import BrandCompliance
from evaluations.scorers.registry import builtin_scorer
from evaluations.scorers.text import flesch_kincaid_grade

QUESTION = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}


def example(output: str, **kwargs) -> Example:
    return Example.build(input=kwargs.pop("input", QUESTION), output=output, **kwargs)


def test_score_refuses_values_outside_zero_one_and_nan():
    for value in (-0.1, 1.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="finite number in"):
            Score(scorer="x", scorer_version="1", value=value, passed=False, explanation="")


def test_exact_match_collapses_whitespace_and_needs_expected():
    scorer = builtin_scorer("exact_match")
    assert scorer.score(example(" Paris\n", expected="Paris")).value == 1.0
    assert scorer.score(example("paris", expected="Paris")).value == 0.0
    with pytest.raises(ScorerError, match="expected output"):
        scorer.score(example("Paris"))


def test_contains_and_not_contains():
    contains = build_scorer("contains", {"values": ["paris", "france"], "mode": "all"})
    result = contains.score(example("Paris is lovely"))
    assert result.value == 0.0
    assert result.details["missing"] == ["france"]
    assert build_scorer("contains", {"values": ["paris", "rome"], "mode": "any"}).score(example("Paris")).passed
    forbidden = build_scorer("not_contains", {"values": ["guarantee"]})
    assert forbidden.score(example("We GUARANTEE it")).value == 0.0
    assert forbidden.score(example("We hope so")).value == 1.0


def test_regex_scorer_and_its_timeout():
    assert build_scorer("regex", {"pattern": r"\d{5}"}).score(example("zip 75001")).passed
    assert not build_scorer("regex", {"pattern": r"\d{5}", "must_match": False}).score(example("zip 75001")).passed
    slow = build_scorer("regex", {"pattern": r"(a+)+$"})
    with pytest.raises(ScorerError, match="took longer"):
        slow.score(example("a" * 5000 + "!"))


def test_json_scorers():
    assert builtin_scorer("valid_json").score(example('```json\n{"a": 1}\n```')).passed
    assert not builtin_scorer("valid_json").score(example("{'a': 1}")).passed
    assert not builtin_scorer("valid_json").score(example("[" * 5000)).passed  # too deep: invalid, not a crash
    schema = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string", "pattern": "^[A-Z]"}}}
    scorer = build_scorer("json_schema", {"schema": schema})
    assert scorer.score(example('{"city": "Paris"}')).passed
    failed = scorer.score(example('{"city": "paris"}'))
    assert not failed.passed
    assert "city" in failed.explanation


def test_length_and_refusal():
    assert not build_scorer("length", {"max_words": 3}).score(example("one two three four")).passed
    refusal = builtin_scorer("refusal")
    assert refusal.score(example("I'm sorry, but I can't help with that request.")).label == "refusal"
    assert refusal.score(example("Paris is the capital.")).passed
    assert build_scorer("refusal", {"expect_refusal": True}).score(example("I cannot assist with that.")).passed


def test_semantic_similarity_and_relevance():
    similar = builtin_scorer("semantic_similarity").score(
        example("Paris is France's capital.", expected="The capital of France is Paris.")
    )
    different = builtin_scorer("semantic_similarity").score(
        example("I like green apples.", expected="The capital of France is Paris.")
    )
    assert similar.passed
    assert not different.passed
    assert similar.value > different.value
    assert builtin_scorer("relevance").score(example("The capital of France is Paris.")).passed
    assert not builtin_scorer("relevance").score(example("Our store opens at nine on Sundays.")).passed
    with pytest.raises(ScorerError):
        builtin_scorer("relevance").score(example("x", input={"variables": {}}))


def test_correctness_lists_each_fact():
    result = builtin_scorer("correctness").score(
        example(
            "Paris is the capital. It has about two million inhabitants.",
            facts=["Paris is the capital of France", "The Eiffel Tower is in Paris"],
        )
    )
    assert result.value == 0.5
    assert [fact["found"] for fact in result.details["facts"]] == [True, False]
    assert "MISSING: The Eiffel Tower" in result.explanation
    with pytest.raises(ScorerError, match="expected facts"):
        builtin_scorer("correctness").score(example("Paris"))


def test_groundedness_counts_supported_sentences():
    documents = [
        {"id": "kb1", "text": "Refunds are issued within 14 days of the return. Shipping is free above 50 euros."}
    ]
    result = builtin_scorer("groundedness").score(
        example(
            "Refunds are issued within 14 days of your return. We also give every customer a free laptop.",
            documents=documents,
        )
    )
    assert result.value == 0.5
    assert result.details["sentences"][0]["supported_by"] == "kb1"
    with pytest.raises(ScorerError, match="context documents"):
        builtin_scorer("groundedness").score(example("Some answer here today."))


def test_toxicity():
    scorer = builtin_scorer("toxicity")
    assert scorer.score(example("Thank you for your patience, your refund is on its way.")).label == "non_toxic"
    toxic = scorer.score(example("You are a stupid idiot, shut up."))
    assert toxic.label == "toxic"
    assert not toxic.passed
    assert toxic.value < 0.5
    with pytest.raises(ScorerError):
        scorer.score(example("   "))
    batch = scorer.score_batch([example("Thanks a lot!"), example("")])
    assert isinstance(batch[0], Score)
    assert isinstance(batch[1], ScorerError)


def test_brand_compliance_names_each_failed_rule():
    rules = {
        "forbidden_phrases": ["cheap"],
        "competitors": ["Acme Corp"],
        "required_disclaimers": [
            {"topic_keywords": ["invest", "stocks"], "disclaimer": "This is not financial advice."}
        ],
        "tone": {"max_exclamation_marks": 1},
        "allowed_claims": ["the best support in Europe"],
    }
    scorer = BrandCompliance(rules=rules)
    bad = scorer.score(example("Unlike acme corp, we are cheap!! You should invest in stocks. We guarantee returns."))
    assert not bad.passed
    assert bad.details["failed_rules"] == [
        "allowed_claims",
        "competitors",
        "forbidden_phrases",
        "required_disclaimers",
        "tone",
    ]
    good = scorer.score(
        example("We offer the best support in Europe. If you invest, note: this is not financial advice.")
    )
    assert good.passed
    assert good.value == 1.0


def test_reading_level_is_computed_in_code():
    simple = flesch_kincaid_grade("The cat sat on the mat. It was a good cat.")
    hard = flesch_kincaid_grade(
        "Notwithstanding considerable organisational heterogeneity, institutional interoperability "
        "necessitates comprehensive standardisation."
    )
    assert simple is not None
    assert hard is not None
    assert simple < 3 < 12 < hard
    scorer = BrandCompliance(rules={"reading_level": {"max_grade": 8}})
    assert scorer.score(
        example(
            "Notwithstanding considerable organisational heterogeneity, institutional "
            "interoperability necessitates standardisation."
        )
    ).details["failed_rules"] == ["reading_level"]


@pytest.mark.parametrize(
    ("kind", "config", "problem"),
    [
        ("regex", {"pattern": "(unclosed"}, "pattern: the pattern does not compile"),
        ("regex", {}, "'pattern' is a required property"),
        ("json_schema", {"schema": {"type": "nonsense"}}, "schema: invalid JSON Schema"),
        ("json_schema", {"schema": {"patternProperties": {"a+": {}}}}, "patternProperties is not supported"),
        ("length", {"min_chars": 10, "max_chars": 5}, "min_chars (10) is greater than max_chars (5)"),
        ("exact_match", {"unknown": 1}, "Additional properties are not allowed"),
        ("toxicity", {"toxic_probability": 2}, "toxic_probability"),
        ("nope", {}, "is not a scorer"),
    ],
)
def test_config_problems_name_the_problem(kind, config, problem):
    assert problem in (config_problem(kind, config) or "")
