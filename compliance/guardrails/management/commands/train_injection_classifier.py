"""Train the prompt-injection classifier and write its weights file (deterministic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand

from compliance.guardrails import injection, training
from core.embeddings import embed


class Command(BaseCommand):
    requires_system_checks: list[str] = []  # a training run needs no URL or model checks
    help = (
        "Train the prompt-injection classifier (logistic regression on sentence embeddings) on bastioncorpus "
        "plus compliance/guardrails/data/injection_examples.jsonl and write its weights file."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--output", default=str(injection.WEIGHTS_PATH), help="where to write the .npz file")

    def handle(self, *args: Any, **options: Any) -> None:
        np.random.seed(training.SEED)  # nothing below draws random numbers; fixed for any future change
        texts, labels = training.training_examples()
        features = embed(texts)
        label_array = np.array(labels)
        weights, bias = training.fit_logistic_regression(features, label_array)
        output = Path(options["output"])
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("wb") as handle:
            np.savez(handle, weights=weights.astype(np.float32), bias=np.array([bias], dtype=np.float32))
        injection.reset_classifier()
        predictions = (features @ weights + bias) > 0
        accuracy = float((predictions == label_array.astype(bool)).mean())
        self.stdout.write(
            f"Trained on {len(texts)} examples ({int(label_array.sum())} injections); "
            f"training accuracy {accuracy:.3f}; wrote {output}."
        )
