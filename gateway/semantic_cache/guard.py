"""A lexical guard on semantic matches: embeddings place "cancel my order" next to "cancel my
subscription", "$30" next to "$50" and "did" next to "did not". A candidate above the
similarity threshold is served only if the two questions also agree on:
- numbers (amounts, dates, quantities), number words and time words, exactly and in order;
- polarity (a negation on one side only refuses);
- content words: a word of one question with no counterpart in the other (typos of up to one
  or two letters count as the same word) is allowed on one side only. Words missing on both
  sides mean one thing was swapped for another (order/subscription, enable/disable,
  Monday/Friday), and the match is refused.
Measured in bench/cache_bench.py; it trades some recall on rewordings for precision.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"-?[a-z0-9$€£%]+(?:[.,][0-9]+)*")
_CLOCK = re.compile(r"([0-9])\s*(am|pm)\b")
_NEGATIONS = frozenset(
    {
        "not",
        "no",
        "never",
        "dont",
        "doesnt",
        "didnt",
        "cant",
        "cannot",
        "wont",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "havent",
        "hasnt",
        "hadnt",
        "couldnt",
        "shouldnt",
        "wouldnt",
        "nothing",
        "none",
        "neither",
        "nor",
        "without",
    }
)
_NUMBER_WORDS = frozenset(
    {
        "zero",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "twenty",
        "thirty",
        "hundred",
        "thousand",
        "million",
        "once",
        "twice",
        "first",
        "second",
        "third",
        "half",
        "double",
        "single",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "today",
        "tomorrow",
        "yesterday",
        "morning",
        "afternoon",
        "evening",
        "night",
        "weekend",
        "week",
        "month",
        "year",
        "day",
        "hour",
        "last",
        "next",
        "this",
        "same",
        "previous",
        "under",
        "over",
        "above",
        "below",
        "before",
        "after",
        "more",
        "less",
        "fewer",
        "least",
        "most",
    }
)
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "me",
        "my",
        "mine",
        "we",
        "our",
        "you",
        "your",
        "he",
        "she",
        "it",
        "its",
        "they",
        "them",
        "their",
        "this",
        "that",
        "these",
        "those",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "doing",
        "have",
        "has",
        "had",
        "having",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "to",
        "of",
        "for",
        "with",
        "at",
        "by",
        "from",
        "as",
        "about",
        "into",
        "than",
        "then",
        "so",
        "and",
        "or",
        "but",
        "if",
        "how",
        "what",
        "whats",
        "where",
        "wheres",
        "when",
        "why",
        "which",
        "who",
        "whom",
        "whose",
        "there",
        "here",
        "please",
        "help",
        "want",
        "need",
        "like",
        "way",
        "possible",
        "any",
        "some",
        "someone",
        "something",
        "anything",
        "just",
        "also",
        "still",
        "yet",
        "right",
        "now",
        "again",
        "get",
        "got",
        "getting",
        "let",
        "lets",
        "know",
        "tell",
        "ok",
        "okay",
        "hi",
        "hello",
        "thanks",
        "thank",
        "is",
        "it's",
        "im",
        "ive",
        "id",
        "ill",
        "able",
        "time",
        "one",
    ]
)


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("\u2019", "'").replace("n't", "nt").replace("'", "")
    text = _CLOCK.sub(r"\1\2", text)
    return [word for word in _WORD.findall(text.replace("-", " -")) if word != "-"]


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _close(left: str, right: str) -> bool:
    """Same word up to a typo: optimal string alignment distance <= 1 (<= 2 from 9 letters)."""
    if left == right:
        return True
    if min(len(left), len(right)) < 4 or abs(len(left) - len(right)) > 2:
        return False
    limit = 2 if min(len(left), len(right)) >= 9 else 1
    previous_previous: list[int] = []
    previous = list(range(len(right) + 1))
    for i in range(1, len(left) + 1):
        current = [i] + [0] * len(right)
        for j in range(1, len(right) + 1):
            cost = 0 if left[i - 1] == right[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and left[i - 1] == right[j - 2] and left[i - 2] == right[j - 1]:
                current[j] = min(current[j], previous_previous[j - 2] + 1)
        if min(current) > limit:
            return False
        previous_previous, previous = previous, current
    return previous[-1] <= limit


def _is_number(token: str) -> bool:
    word = token.lstrip("-")
    return any(c.isdigit() for c in token) or word in _NUMBER_WORDS or _stem(word) in _NUMBER_WORDS


def _numbers(tokens: list[str]) -> list[str]:
    """Numbers and number-like words in order: "$50 instead of $30" is not "$30 instead of $50"."""
    return [token.replace(",", "") for token in tokens if _is_number(token)]


def _content(tokens: list[str]) -> list[str]:
    return [
        _stem(token)
        for token in tokens
        if token not in _STOPWORDS and token not in _NEGATIONS and not _is_number(token)
    ]


def _unmatched(words: list[str], others: list[str]) -> list[str]:
    return [word for word in words if not any(_close(word, other) for other in others)]


def compatible(query: str, cached: str) -> bool:
    """Whether `cached` may answer `query` as far as the words tell (see the module docstring)."""
    query_tokens, cached_tokens = _tokens(query), _tokens(cached)
    if _numbers(query_tokens) != _numbers(cached_tokens):
        return False
    if bool(_NEGATIONS.intersection(query_tokens)) != bool(_NEGATIONS.intersection(cached_tokens)):
        return False
    query_words, cached_words = _content(query_tokens), _content(cached_tokens)
    return not (_unmatched(query_words, cached_words) and _unmatched(cached_words, query_words))
