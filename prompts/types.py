"""Value types of prompts that other apps may use (the public surface beside services and selectors)."""

from __future__ import annotations

from django.db import models


class LabelAction(models.TextChoices):
    MOVE = "move", "Move"
    ROLLBACK = "rollback", "Rollback"
    EXPERIMENT_WINNER = "experiment_winner", "Experiment winner"


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
