"""Scorers on sentence embeddings (core.embeddings: all-MiniLM-L6-v2, local, no download).

Without an NLI or cross-encoder model that installs offline (see ../shared/PACKAGES.md),
correctness and groundedness combine a lexical check (content words of the fact or sentence
found) with embedding similarity against sentences. Thresholds are set on the development sets
in evaluations/data/ (bench/evals_scorers_bench.py prints their precision and recall).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.embeddings import embed
from evaluations.scorers import text
from evaluations.scorers.base import Example, Score, Scorer, ScorerError, input_text


def _cosine(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.clip(np.dot(first, second), -1.0, 1.0))


class SemanticSimilarity(Scorer):
    """Cosine similarity of the output and the expected output (negative counts as 0)."""

    name = "semantic_similarity"
    version = "1"
    default_threshold = 0.72

    def _pair(self, example: Example) -> tuple[str, str]:
        if example.expected.output is None:
            raise ScorerError("semantic_similarity compares with the expected output, and this example has none.")
        if not example.output.strip() or not example.expected.output.strip():
            raise ScorerError("semantic_similarity cannot compare an empty text.")
        return example.output, example.expected.output

    def _from_similarity(self, similarity: float) -> Score:
        value = max(0.0, similarity)
        verdict = "same meaning" if value >= self.threshold else "different meaning"
        return self._result(
            value,
            f"Cosine similarity {similarity:.3f} to the expected output ({verdict} at threshold {self.threshold}).",
            label=verdict.replace(" ", "_"),
        )

    def _score(self, example: Example) -> Score:
        first, second = self._pair(example)
        vectors = embed([first, second])
        return self._from_similarity(_cosine(vectors[0], vectors[1]))

    def score_batch(self, examples: Sequence[Example]) -> list[Score | ScorerError]:
        """All pairs embedded in one call (batched by the embedder): about 3x faster than one by one."""
        results: list[Score | ScorerError | None] = [None] * len(examples)
        pairs: list[tuple[int, str, str]] = []
        for index, example in enumerate(examples):
            try:
                self.check_output(example)
                pairs.append((index, *self._pair(example)))
            except ScorerError as error:
                results[index] = error
        if pairs:
            vectors = embed([first for _, first, _ in pairs] + [second for _, _, second in pairs])
            for position, (index, _, _) in enumerate(pairs):
                results[index] = self._from_similarity(_cosine(vectors[position], vectors[len(pairs) + position]))
        return [result for result in results if result is not None]


class Relevance(SemanticSimilarity):
    """Cosine similarity of the answer to the question (the last user message, or the variables)."""

    name = "relevance"
    version = "1"
    default_threshold = 0.3

    def _pair(self, example: Example) -> tuple[str, str]:
        question = input_text(example.input)
        if not question.strip():
            raise ScorerError("relevance needs a question: the input has no user message or text variables.")
        if not example.output.strip():
            raise ScorerError("relevance cannot score an empty answer.")
        return example.output, question

    def _from_similarity(self, similarity: float) -> Score:
        value = max(0.0, similarity)
        verdict = "relevant" if value >= self.threshold else "off_topic"
        return self._result(
            value, f"Cosine similarity {similarity:.3f} between answer and question ({verdict}).", label=verdict
        )


class Correctness(Scorer):
    """The share of expected facts the answer states: a fact is found when most of its content
    words appear in the answer, or when an answer sentence (or the whole answer) is close to it."""

    name = "correctness"
    version = "1"
    default_threshold = 1.0

    def __init__(self, *, fact_threshold: float = 0.7, word_coverage: float = 0.8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fact_threshold = fact_threshold
        self.word_coverage = word_coverage

    def _score(self, example: Example) -> Score:
        facts = [fact for fact in example.expected.facts if fact.strip()]
        if not facts:
            raise ScorerError("correctness checks expected facts, and this example has none.")
        if not example.output.strip():
            return self._result(
                0.0,
                "The answer is empty: no fact is stated.",
                details={"facts": [{"fact": fact, "found": False} for fact in facts]},
            )
        answer_words = text.content_words(example.output)
        answer_sentences = text.sentences(example.output) or [example.output]
        vectors = embed(facts + answer_sentences + [example.output])
        fact_vectors, sentence_vectors = vectors[: len(facts)], vectors[len(facts) :]
        results: list[dict[str, Any]] = []
        for index, fact in enumerate(facts):
            lexical = text.coverage(fact, answer_words)
            similarity = float(np.max(sentence_vectors @ fact_vectors[index]))
            found = lexical >= self.word_coverage or similarity >= self.fact_threshold
            results.append(
                {"fact": fact, "found": found, "word_coverage": round(lexical, 3), "similarity": round(similarity, 3)}
            )
        found_count = sum(1 for result in results if result["found"])
        listing = "; ".join(
            f"{'found' if result['found'] else 'MISSING'}: {result['fact'][:120]}" for result in results
        )
        return self._result(
            found_count / len(facts),
            f"{found_count} of {len(facts)} facts stated. {listing}",
            details={"facts": results},
        )


class Groundedness(Scorer):
    """The share of answer sentences supported by a context document: a sentence is supported
    when most of its content words appear in one document or it is close to a document sentence."""

    name = "groundedness"
    version = "1"
    default_threshold = 0.8

    def __init__(self, *, sentence_threshold: float = 0.6, word_coverage: float = 0.8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sentence_threshold = sentence_threshold
        self.word_coverage = word_coverage

    def _score(self, example: Example) -> Score:
        documents = [document for document in example.context if document.text.strip()]
        if not documents:
            raise ScorerError("groundedness checks the answer against context documents, and this example has none.")
        claims = [sentence for sentence in text.sentences(example.output) if len(text.words(sentence)) >= 3]
        if not claims:
            raise ScorerError("groundedness needs an answer with at least one sentence of three words or more.")
        document_words = [text.content_words(document.text) for document in documents]
        document_sentences = [
            (document.id, sentence) for document in documents for sentence in text.sentences(document.text)
        ]
        vectors = embed(claims + [sentence for _, sentence in document_sentences])
        claim_vectors, source_vectors = vectors[: len(claims)], vectors[len(claims) :]
        results: list[dict[str, Any]] = []
        for index, claim in enumerate(claims):
            best_lexical = max(
                range(len(documents)), key=lambda position: text.coverage(claim, document_words[position])
            )
            lexical = text.coverage(claim, document_words[best_lexical])
            similarities = source_vectors @ claim_vectors[index]
            best = int(np.argmax(similarities))
            supported_by = None
            if lexical >= self.word_coverage:
                supported_by = documents[best_lexical].id
            elif float(similarities[best]) >= self.sentence_threshold:
                supported_by = document_sentences[best][0]
            results.append(
                {"sentence": claim, "supported_by": supported_by, "similarity": round(float(similarities[best]), 3)}
            )
        supported = sum(1 for result in results if result["supported_by"] is not None)
        unsupported = [result["sentence"][:120] for result in results if result["supported_by"] is None]
        explanation = f"{supported} of {len(claims)} sentences supported by the context."
        if unsupported:
            explanation += " Unsupported: " + " | ".join(unsupported)
        return self._result(supported / len(claims), explanation, details={"sentences": results})
