"""Class-balanced logistic regression in numpy, deterministic: the injection classifier
(compliance.guardrails) and the complexity router (gateway) are trained with it."""

from __future__ import annotations

import numpy as np


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
