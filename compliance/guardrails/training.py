"""Training data for the injection classifier; the regression itself is core.logistic_regression's."""

from __future__ import annotations

import json
from pathlib import Path

from core.logistic_regression import fit_logistic_regression

__all__ = ["EXAMPLES_PATH", "SEED", "fit_logistic_regression", "training_examples"]

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
