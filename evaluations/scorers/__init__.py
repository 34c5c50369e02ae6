"""The scorer library: one interface (base.Scorer -> base.Score or base.ScorerError), the
built-in scorers, and the registry that builds them from a team's configuration."""

from evaluations.scorers.base import Document, Example, Expected, Score, Scorer, ScorerError
from evaluations.scorers.registry import SPECS, ScorerSpec, build_scorer, config_problem, spec_for

__all__ = [
    "SPECS",
    "Document",
    "Example",
    "Expected",
    "Score",
    "Scorer",
    "ScorerError",
    "ScorerSpec",
    "build_scorer",
    "config_problem",
    "spec_for",
]
