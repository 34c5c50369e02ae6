"""Writes of evaluations (datasets and items, fills, configured scorers and brand policies).

Other apps and the later evaluation parts (runs, compare, gates, pages) import from here."""

from evaluations.services.datasets import (
    NewItem,
    Provenance,
    dataset_archive,
    dataset_create,
    dataset_items_change,
    dataset_update,
)
from evaluations.services.filling import FromCallsResult, dataset_add_from_calls, dataset_import, import_format
from evaluations.services.scorers import (
    brand_policy_create,
    brand_policy_update,
    score_example,
    scorer_config_create,
    scorer_config_update,
    scorer_for_config,
    scorer_for_version,
)

__all__ = [
    "FromCallsResult",
    "NewItem",
    "Provenance",
    "brand_policy_create",
    "brand_policy_update",
    "dataset_add_from_calls",
    "dataset_archive",
    "dataset_create",
    "dataset_import",
    "dataset_items_change",
    "dataset_update",
    "import_format",
    "score_example",
    "scorer_config_create",
    "scorer_config_update",
    "scorer_for_config",
    "scorer_for_version",
]
