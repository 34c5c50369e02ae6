import numpy as np
import pytest

from core.embeddings import DIMENSIONS, embed


def test_embeddings_are_normalised_rows_in_input_order():
    vectors = embed(["first text", "second, longer text about the weather in Lisbon", "third"])

    assert vectors.shape == (3, DIMENSIONS)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_paraphrases_are_close_and_unrelated_sentences_are_not():
    paraphrase, other_paraphrase, unrelated = embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."]
    )

    assert float(paraphrase @ other_paraphrase) > 0.7
    assert abs(float(paraphrase @ unrelated)) < 0.2


def test_embedding_is_deterministic_and_independent_of_batching():
    texts = ["short", "a noticeably longer sentence that needs more padding in a batch", "medium length text"]

    batched = embed(texts)
    single = np.vstack([embed([text]) for text in texts])

    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_array_equal(embed(texts), batched)


def test_empty_input_gives_an_empty_matrix_and_a_bare_string_is_refused():
    assert embed([]).shape == (0, DIMENSIONS)
    with pytest.raises(TypeError):
        embed("not a list")  # a str is a Sequence[str] to the type checker; refused at run time
