"""Prompt-injection detector: rules plus a logistic-regression classifier on sentence embeddings.

A text's score is the larger of the strongest matching rule's score and the classifier's
probability on its most suspicious chunk. Rules catch the well-known shapes (instruction
override, persona and "developer mode" jailbreaks, system-prompt exfiltration, fake role
delimiters, instructions addressed to the model inside documents, instructions hidden in
base64 or hex); the classifier catches paraphrases. The classifier's weights are trained by
`python manage.py train_injection_classifier` and shipped in data/injection_classifier.npz.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from re import _constants, _parser  # type: ignore[attr-defined,unused-ignore]  # private in typeshed; the stdlib's regex parser: rule prefilters
from typing import Any

import numpy as np

from compliance.guardrails.lru import LruCache, text_digest
from core.embeddings import embed

WEIGHTS_PATH = Path(__file__).resolve().parent / "data" / "injection_classifier.npz"
CHUNK_WORDS = 40
MAX_CHUNKS_PER_TEXT = 24
MAX_SCANNED_CHARS = 200_000


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    score: float


def _rule(name: str, pattern: str, score: float, *, flags: int = re.IGNORECASE) -> Rule:
    return Rule(name=name, pattern=re.compile(pattern, flags), score=score)


_TARGETS = (
    r"(instructions?|prompts?|rules|directives?|guidelines|guardrails|context|restrictions|constraints|"
    r"programming|system message|commands?)"
)
RULES: tuple[Rule, ...] = (
    _rule(
        "instruction_override",
        r"\b(ignore|disregard|forget|override|bypass|skip|discard|abandon)\b[^.\n]{0,40}?"
        r"\b(all|any|every|previous|prior|above|earlier|preceding|original|initial|system|safety|your)\b[^.\n]{0,25}?"
        rf"\b{_TARGETS}",
        0.92,
    ),
    _rule(
        "instruction_override",
        r"\b(from now on|henceforth|starting now)\b[^.\n]{0,60}\b(no (restrictions|limits|rules|filters)|"
        r"unrestricted|unfiltered|without (any )?(restrictions|limits|filters|rules)|ignore|only (obey|follow))",
        0.9,
    ),
    _rule(
        "instruction_override",
        r"\b(new|updated|real|actual) (system )?(instructions?|rules|directives?)\s*(:|are\b|follow)",
        0.8,
    ),
    _rule(
        "instruction_override",
        # German, French, Spanish and Italian forms of "ignore the previous instructions".
        r"\b(ignorier\w*|vergiss\w*|ignorez|oubliez|ignora|olvida|dimentica)\b[^.\n]{0,40}"
        r"\b(anweisungen|regeln|instructions|consignes|instrucciones|istruzioni|reglas|regole)\b",
        0.9,
    ),
    _rule(
        "persona_jailbreak",
        r"\b(enter|enable|activate|switch (to|into)|turn on|you are (now )?(in|an?)|respond (as|in)|act (as|in)|"
        r"answer (as|in)|stay in)\b[^.\n]{0,30}\b(developer mode|dev mode|god mode|DAN|jailbroken|jailbreak mode|"
        r"unrestricted|unfiltered|uncensored)",
        0.9,
    ),
    _rule(
        "persona_jailbreak",
        r"\b(evil (ai|assistant|twin)|jailbroken alter ego|do anything now|"
        r"no (ethical|moral|content) (guidelines|constraints|restrictions|filters|policy))\b",
        0.88,
    ),
    # A bare mention ("what is a jailbreak?") is only a hint: below the default threshold on its own.
    _rule("persona_jailbreak", r"\b(developer mode|god mode|jailbreak\w*|unrestricted (ai|mode|model))\b", 0.45),
    _rule("persona_jailbreak", r"\bDAN\b", 0.45, flags=0),
    _rule(
        "persona_jailbreak",
        r"\b(you are|you're|act as|pretend (to be|you are)|roleplay as|imagine you are|become)\b[^.\n]{0,60}"
        r"\b(no|without|free (of|from)|not bound by|unbound by|ignores?)\b[^.\n]{0,30}"
        r"\b(restrictions|rules|filters|guidelines|limits|limitations|ethics|morals|policies|censorship)\b",
        0.88,
    ),
    _rule(
        "system_prompt_exfiltration",
        r"\b(reveal|show|print|output|repeat|display|leak|dump|disclose|expose|share|tell me|give me|read|recite)\b"
        r"[^.\n]{0,40}\b((your|the) (system prompt|system message)|initial (prompt|instructions)|"
        r"hidden (prompt|instructions)|"
        r"original (prompt|instructions)|your (instructions|prompt|system prompt|configuration|rules)|"
        r"(the )?(text|words|everything|instructions) (above|before this))\b",
        0.88,
    ),
    _rule(
        "delimiter_injection",
        r"(<\|im_start\|>|<\|im_end\|>|<\|system\|>|<\|endoftext\|>|\[/?INST\]|<<SYS>>|</?system>|"
        r"\bEND OF (USER )?(INPUT|PROMPT|CONVERSATION)\b|\bBEGIN (NEW )?(SYSTEM )?(INSTRUCTIONS|PROMPT)\b)",
        0.85,
    ),
    _rule("delimiter_injection", r"(^|\n)\s*(#{1,4}\s*)?(system|assistant)\s*(:|\]|>)", 0.7),
    _rule(
        "document_injection",
        r"\b(note|message|text|instructions?|attention|important)\b[^.\n]{0,10}\b(to|for)\b (the |any )?"
        r"(ai|assistant|llm|language model|chatbot|model|agent|bot)s?\b",
        0.85,
    ),
    _rule(
        "document_injection",
        r"\b(if you are|if you're|when) (an? )?(ai|assistant|llm|language model|chatbot|agent)\b[^.\n]{0,60}"
        r"\b(reading|processing|summari[sz]ing|parsing|seeing)\b",
        0.88,
    ),
    _rule(
        "document_injection",
        r"\b(when|if|once) the (assistant|ai|model|llm|chatbot|agent|bot) (reads|processes|sees|summari[sz]es|parses)"
        r" this\b",
        0.85,
    ),
    _rule("document_injection", r"<!--[^>]{0,200}\b(ignore|instruction|assistant|ai|system|prompt)\b", 0.8),
    _rule("hidden_characters", r"[\u200b\u200c\u200d\u2060\ufeff]{3,}|[\U000e0000-\U000e007f]", 0.7, flags=0),
    _rule(
        "encoding_trick",
        r"\b(decode|decrypt|translate|convert)\b[^.\n]{0,40}\b(base64|hex|rot13|binary|morse|cipher)\b"
        r"[^.\n]{0,60}\b(follow|execute|obey|do|run|carry out|comply)\b",
        0.85,
    ),
    _rule(
        "exfiltration",
        r"!\[[^\]]{0,100}\]\(https?://[^)\s]{0,200}[?&][^)\s]{0,200}=[^)\s]{0,200}\)",
        0.75,
    ),
    _rule(
        "exfiltration",
        r"\b(send|forward|post|upload|email|exfiltrate|transmit)\b[^.\n]{0,60}"
        r"\b(password|credentials?|api keys?|secrets?|tokens?|conversation|chat history|database|customer data)\b"
        r"[^.\n]{0,40}\b(to|at)\b\s+(https?://|\S+@\S+)",
        0.85,
    ),
)

_ENCODED_RUN = re.compile(
    r"(?<![A-Za-z0-9+/=_-])(?:[A-Za-z0-9+/_-]{20,}={0,2}|(?:[0-9a-fA-F]{2}){12,})(?![A-Za-z0-9+/=])"
)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Finding:
    score: float
    rule: str | None  # the strongest matching rule, or None when the classifier decided
    classifier_score: float


def _decode_runs(text: str) -> list[str]:
    """Readable text hidden in base64 or hex runs (noise such as hashes and image data is skipped)."""
    decoded_texts = []
    for match in _ENCODED_RUN.finditer(text[:MAX_SCANNED_CHARS]):
        run = match.group(0)
        candidates: list[bytes] = []
        if re.fullmatch(r"[0-9a-fA-F]+", run) and len(run) % 2 == 0:
            candidates.append(binascii.unhexlify(run))
        try:
            padded = run + "=" * (-len(run) % 4)
            candidates.append(base64.b64decode(padded, altchars=b"-_" if ("-" in run or "_" in run) else None))
        except (binascii.Error, ValueError):
            pass
        for raw in candidates:
            try:
                decoded = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            printable = sum(character.isprintable() or character.isspace() for character in decoded)
            if decoded and printable / len(decoded) > 0.95 and re.search(r"[A-Za-z]{3,}\s+[A-Za-z]{2,}", decoded):
                decoded_texts.append(decoded)
    return decoded_texts


def _literal_prefixes(items: Any) -> set[str] | None:
    """The literal texts one of which every match of the parsed pattern `items` starts with
    (after zero-width anchors), or None when there are none to require."""
    prefix = ""
    for operator, argument in items:
        if operator is _constants.AT and not prefix:
            continue
        if operator is _constants.LITERAL:
            prefix += chr(argument)
            continue
        if not prefix and operator is _constants.SUBPATTERN:
            return _literal_prefixes(argument[3])
        if not prefix and operator is _constants.BRANCH:
            alternatives = [_literal_prefixes(alternative) for alternative in argument[1]]
            if any(alternative is None for alternative in alternatives):
                return None
            return set().union(*alternatives)  # type: ignore[arg-type]  # None excluded above
        break
    return {prefix} if prefix else None


def _needles(rule: Rule) -> tuple[str, ...] | None:
    """Texts one of which must occur in a text for the rule to match it (lower-cased when the
    rule ignores case), or None: a `str.find` over the text is far cheaper than a failed regex
    search, which tries the pattern at every position."""
    prefixes = _literal_prefixes(_parser.parse(rule.pattern.pattern, rule.pattern.flags))
    if prefixes is None:
        return None
    ignore_case = bool(rule.pattern.flags & re.IGNORECASE)
    return tuple(sorted(prefix.lower() if ignore_case else prefix for prefix in prefixes))


# (rule, needles, whether it ignores case), worked out once: flag arithmetic on re.RegexFlag is slow.
_RULE_CHECKS = tuple((rule, _needles(rule), bool(rule.pattern.flags & re.IGNORECASE)) for rule in RULES)
# The only characters beyond ASCII that `re.IGNORECASE` matches to ASCII letters (U+0130 and
# U+0131, dotted and dotless i; U+017F, long s; U+212A, the Kelvin sign; a test checks every code
# point): folded so that a needle is still found.
ASCII_CASE_FOLD = {0x130: "i", 0x131: "i", 0x17F: "s", 0x212A: "k"}


def rule_scan(text: str) -> tuple[float, str | None]:
    """The strongest matching rule's score and name; decoded base64/hex payloads are scanned too."""
    scanned = text[:MAX_SCANNED_CHARS]
    folded = (scanned if scanned.isascii() else scanned.translate(ASCII_CASE_FOLD)).lower()
    best_score, best_rule = 0.0, None
    for rule, needles, ignore_case in _RULE_CHECKS:
        if rule.score <= best_score:
            continue
        if needles is not None:
            haystack = folded if ignore_case else scanned
            for needle in needles:
                if needle in haystack:
                    break
            else:
                continue
        if rule.pattern.search(scanned):
            best_score, best_rule = rule.score, rule.name
    for decoded in _decode_runs(scanned):
        inner_score, inner_rule = rule_scan(decoded) if decoded != text else (0.0, None)
        if inner_rule is not None and max(inner_score, 0.95) > best_score:
            best_score, best_rule = 0.95, f"encoded_{inner_rule}"
    return best_score, best_rule


def chunks(text: str) -> list[str]:
    """Windows of about CHUNK_WORDS words along sentence boundaries, so that one injected
    sentence in a long document is scored on its own."""
    words_in_text = text.split()
    if len(words_in_text) <= CHUNK_WORDS:
        return [text.strip()] if text.strip() else []
    result: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE_BREAK.split(text[:MAX_SCANNED_CHARS]):
        words = sentence.split()
        if not words:
            continue
        if current and len(current) + len(words) > CHUNK_WORDS:
            result.append(" ".join(current))
            current = []
        current.extend(words[: CHUNK_WORDS * 2])
    if current:
        result.append(" ".join(current))
    return result[:MAX_CHUNKS_PER_TEXT]


@dataclass(frozen=True)
class Classifier:
    weights: np.ndarray
    bias: float

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        logits = vectors @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-logits))


_classifier: Classifier | None = None
_classifier_lock = threading.Lock()


def load_classifier(path: Path = WEIGHTS_PATH) -> Classifier:
    with np.load(path) as data:
        return Classifier(weights=data["weights"].astype(np.float32), bias=float(data["bias"][0]))


def get_classifier() -> Classifier:
    global _classifier
    if _classifier is None:
        with _classifier_lock:
            if _classifier is None:
                _classifier = load_classifier()
    return _classifier


def reset_classifier() -> None:
    """Forget the loaded weights (after training writes a new file) and what they scored."""
    global _classifier
    _classifier = None
    probability_cache.clear()


# What the classifier may embed for one request, in (estimated) tokens. Embedding costs about
# 1 ms of CPU per token on this project's 2-core reference machine (bench/request_limits_bench.py),
# and a request may hold 1,000,000 characters (some 250,000 tokens, minutes of CPU): past this
# budget the most suspicious chunks are classified first and the rest only by the rules,
# which read every text.
CLASSIFIER_MAX_TOKENS = 384
# A chunk of 40 words is some 55 tokens; the model reads at most 256 (+ 2 markers).
_CHARS_PER_TOKEN = 3
_MODEL_MAX_TOKENS = 258
# Words that instructions aimed at a model tend to use: chunks with more of them are classified first.
_HINT_WORDS = frozenset(
    [
        "ignore",
        "disregard",
        "forget",
        "override",
        "bypass",
        "instruction",
        "instructions",
        "prompt",
        "prompts",
        "system",
        "rules",
        "pretend",
        "roleplay",
        "persona",
        "jailbreak",
        "unrestricted",
        "unfiltered",
        "reveal",
        "secret",
        "password",
        "assistant",
        "ai",
        "model",
        "mode",
        "developer",
        "obey",
        "comply",
        "must",
        "now",
        "previous",
        "above",
        "earlier",
        "new",
        "you",
        "your",
    ]
)
_ASCII_WORD = re.compile(r"[a-z]+")


def _hints(chunk: str) -> int:
    return sum(word in _HINT_WORDS for word in _ASCII_WORD.findall(chunk.lower()))


CACHE_ENTRIES = 50_000


# Classifier probabilities of chunks seen before, per application (compliance/guardrails/lru.py).
probability_cache: LruCache[tuple[object, bytes], float] = LruCache(CACHE_ENTRIES)


def _estimated_tokens(chunk: str) -> int:
    return min(_MODEL_MAX_TOKENS, len(chunk) // _CHARS_PER_TOKEN + 2)


def classify_chunks(
    chunk_texts: Sequence[str], *, cache_scope: object | None = None, max_tokens: int = CLASSIFIER_MAX_TOKENS
) -> list[float | None]:
    """The classifier's probability for each chunk, or None for a chunk left unclassified.

    Identical chunks are embedded once, chunks in the cache not at all; the others are embedded
    in one batch of at most `max_tokens` estimated tokens, the chunks with the most instruction
    words first and, among equals, the later ones (the end of a conversation, then documents).
    """
    probabilities: list[float | None] = [None] * len(chunk_texts)
    positions: dict[str, list[int]] = {}
    for position, chunk in enumerate(chunk_texts):
        positions.setdefault(chunk, []).append(position)
    pending: list[str] = []
    keys: dict[str, tuple[object, bytes]] = {}
    for chunk, where in positions.items():
        cached = None
        if cache_scope is not None:
            keys[chunk] = (cache_scope, text_digest(chunk))
            cached = probability_cache.get(keys[chunk])
        if cached is None:
            pending.append(chunk)
            continue
        for position in where:
            probabilities[position] = cached
    if len(pending) > 1 and sum(_estimated_tokens(chunk) for chunk in pending) > max_tokens:
        pending.sort(key=lambda chunk: (-_hints(chunk), -positions[chunk][-1]))
    selected: list[str] = []
    spent = 0
    for chunk in pending:
        cost = _estimated_tokens(chunk)
        if spent + cost > max_tokens and selected:
            continue
        selected.append(chunk)
        spent += cost
    if selected:
        for chunk, probability in zip(selected, get_classifier().probabilities(embed(selected)), strict=True):
            value = float(probability)
            if chunk in keys:
                probability_cache.put(keys[chunk], value)
            for position in positions[chunk]:
                probabilities[position] = value
    return probabilities


def score_texts(
    texts: Sequence[str], *, cache_scope: object | None = None, max_tokens: int = CLASSIFIER_MAX_TOKENS
) -> list[Finding]:
    """One finding per text: the rules read every text; the classifier its chunks within
    `max_tokens` (see `classify_chunks`)."""
    all_chunks: list[str] = []
    owners: list[int] = []
    for index, text in enumerate(texts):
        for chunk in chunks(text):
            all_chunks.append(chunk)
            owners.append(index)
    classifier_scores = [0.0] * len(texts)
    for owner, probability in zip(
        owners, classify_chunks(all_chunks, cache_scope=cache_scope, max_tokens=max_tokens), strict=True
    ):
        if probability is not None:
            classifier_scores[owner] = max(classifier_scores[owner], probability)
    findings = []
    for index, text in enumerate(texts):
        rule_score, rule_name = rule_scan(text)
        classifier_score = classifier_scores[index]
        if rule_score >= classifier_score:
            findings.append(Finding(score=rule_score, rule=rule_name, classifier_score=classifier_score))
        else:
            findings.append(Finding(score=classifier_score, rule=None, classifier_score=classifier_score))
    return findings
