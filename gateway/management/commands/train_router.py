"""Train the complexity scorer of model routing and write its weights file (deterministic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway import complexity

SEED = 20260505  # nothing draws random numbers; fixed for any future change that does


class Command(BaseCommand):
    requires_system_checks: list[str] = []  # a training run needs no URL or model checks
    help = (
        "Train the routing complexity scorer (logistic regression on the query embedding plus cheap features) "
        "on a CSV with columns query,tier (small or large) and optionally split, and write its weights. "
        "Retrain from reviewed traffic by exporting it in the same format and passing --data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", default=str(complexity.DEFAULT_DATA_PATH), help="the labelled CSV")
        parser.add_argument(
            "--split",
            default="train",
            help="train on rows whose split column has this value ('all': every row; rows of a CSV without "
            "a split column are all used)",
        )
        parser.add_argument("--output", default=str(complexity.WEIGHTS_PATH), help="where to write the weights")

    def handle(self, *args: Any, **options: Any) -> None:
        np.random.seed(SEED)
        data = Path(options["data"])
        try:
            rows = complexity.read_labelled(data)
            split = options["split"]
            has_split = any(row.split for row in rows)
            if split != "all" and has_split:
                rows = [row for row in rows if row.split == split]
            if not rows:
                raise complexity.TrainingDataError(f"{data}: no rows with split {split!r}.")
            document = complexity.train(rows, source=f"{data.name} (split {split if has_split else 'all'})")
        except complexity.TrainingDataError as error:
            raise CommandError(str(error)) from None
        output = Path(options["output"])
        complexity.write_weights(document, output)
        complexity.reset_scorer()
        self.stdout.write(
            f"Trained on {document['examples']} queries ({document['large_examples']} large); "
            f"training accuracy {document['training_accuracy']:.3f}; wrote {output}."
        )
