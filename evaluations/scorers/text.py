"""Plain-text helpers shared by the scorers: sentences, content words, a readability grade."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "me",
        "him",
        "her",
        "us",
        "them",
        "my",
        "your",
        "our",
        "their",
        "his",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "not",
        "no",
        "so",
        "than",
        "then",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "when",
        "where",
        "why",
        "can",
        "could",
        "will",
        "would",
        "shall",
        "should",
        "may",
        "might",
        "must",
        "about",
        "into",
        "over",
        "under",
        "up",
        "down",
        "out",
        "just",
        "also",
        "very",
    ]
)


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def content_words(text: str) -> set[str]:
    return {word.lower() for word in words(text) if word.lower() not in STOPWORDS}


def coverage(needle: str, haystack_words: set[str]) -> float:
    """Share of `needle`'s content words found in `haystack_words` (1.0 when it has none)."""
    wanted = content_words(needle)
    if not wanted:
        return 1.0
    return len(wanted & haystack_words) / len(wanted)


_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def syllables(word: str) -> int:
    """A heuristic English syllable count (vowel groups, silent final e); at least 1."""
    word = word.lower()
    count = len(_VOWEL_GROUPS.findall(word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and count > 1:
        count -= 1
    return max(1, count)


def flesch_kincaid_grade(text: str) -> float | None:
    """The Flesch-Kincaid grade level, or None for a text too short to measure (under 3 words)."""
    found = words(text)
    if len(found) < 3:
        return None
    sentence_count = max(1, len(sentences(text)))
    syllable_count = sum(syllables(word) for word in found)
    return 0.39 * (len(found) / sentence_count) + 11.8 * (syllable_count / len(found)) - 15.59
