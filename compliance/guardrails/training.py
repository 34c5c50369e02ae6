"""Training data and logistic regression for the injection classifier (numpy, deterministic)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

EXAMPLES_PATH = Path(__file__).resolve().parent / "data" / "injection_examples.jsonl"
SEED = 20261127


def training_examples() -> tuple[list[str], list[int]]:
    """bastioncorpus's labelled prompts plus this project's own examples; label 1 = injection."""
    from bastioncorpus import load_corpus  # only training reads the corpus: not loaded by serving processes

    texts: list[str] = []
    labels: list[int] = []
    for row in load_corpus():
        texts.append(row.text)
        labels.append(1 if row.label == "malicious" else 0)
    with EXAMPLES_PATH.open(encoding="utf-8") as examples:
        for line in examples:
            if line.strip():
                example = json.loads(line)
                texts.append(example["text"])
                labels.append(1 if example["label"] == "malicious" else 0)
    return texts, labels


def fit_logistic_regression(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    l2: float = 1e-3,
    learning_rate: float = 10.0,
    iterations: int = 3000,
) -> tuple[np.ndarray, float]:
    """Class-balanced logistic regression by full-batch gradient descent from zero weights.

    Full batches and a fixed start make the result depend only on the data (no randomness).
    """
    features = features.astype(np.float64)
    targets = labels.astype(np.float64)
    positives = max(targets.sum(), 1.0)
    negatives = max(len(targets) - targets.sum(), 1.0)
    sample_weights = np.where(targets == 1, len(targets) / (2 * positives), len(targets) / (2 * negatives))
    weights = np.zeros(features.shape[1])
    bias = 0.0
    for _ in range(iterations):
        probabilities = 1.0 / (1.0 + np.exp(-(features @ weights + bias)))
        error = (probabilities - targets) * sample_weights
        weights -= learning_rate * (features.T @ error / len(targets) + l2 * weights)
        bias -= learning_rate * float(error.mean())
    return weights, bias
