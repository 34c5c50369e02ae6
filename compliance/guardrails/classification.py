"""Pure functions for classification: rule matching over text spans and shingle fingerprints.

A text's level is the highest level of the rules that match it. A data source's text is
fingerprinted as the hashes of its word 8-grams (after lower-casing and dropping
punctuation), so a response that reproduces a passage verbatim shares many of its hashes
while one that only mentions the same topic shares almost none.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from compliance.guardrails import pii

SHINGLE_WORDS = 8
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class CompiledRule:
    rule_id: int
    name: str
    kind: str
    level: int
    entities: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class LevelSpan:
    start: int
    end: int
    level: int
    rule: str


def keywords_pattern(keywords: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(keyword.strip()) for keyword in sorted(keywords, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def rule_spans(text: str, rules: Sequence[CompiledRule]) -> list[LevelSpan]:
    """Every span of `text` that a rule classifies, with that rule's level."""
    spans: list[LevelSpan] = []
    entity_rules = [rule for rule in rules if rule.kind == "pii_entity"]
    if entity_rules and text.strip():
        wanted = sorted({entity for rule in entity_rules for entity in rule.entities})
        for span in pii.detect(text, wanted):
            for rule in entity_rules:
                if span.entity in rule.entities:
                    spans.append(LevelSpan(start=span.start, end=span.end, level=rule.level, rule=rule.name))
    for rule in rules:
        if rule.pattern is None:
            continue
        for match in rule.pattern.finditer(text):
            if match.end() > match.start():
                spans.append(LevelSpan(start=match.start(), end=match.end(), level=rule.level, rule=rule.name))
    return spans


def text_level(text: str, rules: Sequence[CompiledRule]) -> tuple[int | None, list[str]]:
    """The highest level any rule gives the text (None if none matches) and the rules that matched."""
    spans = rule_spans(text, rules)
    if not spans:
        return None, []
    return max(span.level for span in spans), sorted({span.rule for span in spans})


def texts_level(texts: Iterable[str], rules: Sequence[CompiledRule]) -> int | None:
    """The highest level any rule gives any of the texts (None if no rule matches any)."""
    highest: int | None = None
    if not rules:
        return None
    for text in texts:
        if not text:
            continue
        level, _ = text_level(text, rules)
        if level is not None and (highest is None or level > highest):
            highest = level
    return highest


def message_texts(messages: Iterable[object]) -> list[str]:
    """The text of chat messages: string contents and the text of OpenAI content parts."""
    texts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    return texts


def mask_spans(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """Replace each (start, end, label) span with `[REDACTED:label]`; overlapping spans are merged."""
    merged: list[tuple[int, int, str]] = []
    for start, end, label in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end), merged[-1][2])
            continue
        merged.append((start, end, label))
    pieces = []
    cursor = 0
    for start, end, label in merged:
        pieces.append(text[cursor:start])
        pieces.append(f"[REDACTED:{label}]")
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _words(text: str) -> list[re.Match[str]]:
    return list(_WORD.finditer(text))


def _hash(words: Sequence[str]) -> int:
    digest = hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # 63 bits: fits a signed 64-bit integer and JSON


def shingle_hashes(text: str) -> list[int]:
    """Hashes of the text's word 8-grams, in order (texts shorter than 8 words give one hash)."""
    words = [match.group(0).lower() for match in _words(text)]
    if not words:
        return []
    if len(words) < SHINGLE_WORDS:
        return [_hash(words)]
    return [_hash(words[index : index + SHINGLE_WORDS]) for index in range(len(words) - SHINGLE_WORDS + 1)]


def fingerprint(text: str) -> list[int]:
    return sorted(set(shingle_hashes(text)))


@dataclass(frozen=True)
class SourceMatch:
    source_id: int
    matched: int  # shingles of the response found in the source
    share: float  # matched / shingles of the response
    spans: tuple[tuple[int, int], ...]  # character ranges of the response covered by matched shingles


def match_sources(text: str, index: dict[int, set[int]]) -> list[SourceMatch]:
    """Which fingerprinted sources the text reproduces, and where.

    `index` maps a shingle hash to the ids of the sources that contain it.
    """
    word_matches = _words(text)
    words = [match.group(0).lower() for match in word_matches]
    if len(words) < SHINGLE_WORDS:
        return []
    hashes = [_hash(words[index : index + SHINGLE_WORDS]) for index in range(len(words) - SHINGLE_WORDS + 1)]
    positions_by_source: dict[int, list[int]] = {}
    for position, value in enumerate(hashes):
        for source_id in index.get(value, ()):
            positions_by_source.setdefault(source_id, []).append(position)
    results = []
    for source_id, positions in positions_by_source.items():
        ranges: list[tuple[int, int]] = []
        for position in positions:
            start = word_matches[position].start()
            end = word_matches[position + SHINGLE_WORDS - 1].end()
            if ranges and start <= ranges[-1][1]:
                ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
            else:
                ranges.append((start, end))
        results.append(
            SourceMatch(
                source_id=source_id,
                matched=len(positions),
                share=len(positions) / len(hashes),
                spans=tuple(ranges),
            )
        )
    return sorted(results, key=lambda match: -match.matched)
