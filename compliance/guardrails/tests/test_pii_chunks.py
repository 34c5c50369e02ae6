"""Long texts are analysed for PII in overlapping chunks: never over presidio's limit, spans in
the whole text's offsets, entities across a cut found whole."""

from __future__ import annotations

import itertools

from compliance.guardrails import pii

ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER"]


def test_chunks_cover_the_text_cut_at_whitespace_and_overlapping():
    text = " ".join(f"word{index}" for index in range(300))

    pieces = list(pii.chunks(text, size=200, overlap=50))

    assert all(len(piece) <= 200 for _, piece in pieces)
    assert all(text[offset : offset + len(piece)] == piece for offset, piece in pieces)
    assert pieces[-1][0] + len(pieces[-1][1]) == len(text)
    for (offset, piece), (next_offset, _) in itertools.pairwise(pieces):
        assert piece.endswith(" ")  # cut after a space, never inside a word
        assert offset < next_offset <= offset + len(piece) - 1  # the next chunk overlaps this one
        assert text[next_offset - 1] == " "


def test_spans_found_in_chunks_match_those_found_in_the_whole_text():
    # given addresses and phone numbers spread over a text, some across the chunk cuts
    filler = "The customer wrote again about the parcel that never arrived at the depot. "
    text = "".join(
        filler + (f"Mail ada{index}@example.com or call +1 212 555 01{index:02d}. " if index % 3 == 0 else "")
        for index in range(40)
    )

    whole = pii.detect(text, ENTITIES)
    chunked = pii.detect(text, ENTITIES, chunk_chars=300)

    assert chunked == whole
    assert [text[span.start : span.end] for span in chunked if span.entity == "EMAIL_ADDRESS"] == [
        f"ada{index}@example.com" for index in range(0, 40, 3)
    ]


def test_a_text_over_the_analyzers_limit_is_analysed_not_refused():
    # given 1,200,000 characters (presidio refuses a text over 1,000,000) with an address at the end
    text = " " * 1_200_000 + "write to jane.doe@example.com today"

    spans = pii.detect(text, ["EMAIL_ADDRESS"])

    assert [(span.entity, text[span.start : span.end]) for span in spans] == [("EMAIL_ADDRESS", "jane.doe@example.com")]
