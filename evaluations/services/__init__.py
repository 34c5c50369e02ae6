"""Writes of evaluations (datasets and items, fills, configured scorers and brand policies).

Other apps and the later evaluation parts (compare, gates, pages) import from here."""

from evaluations.services.datasets import (
    NewItem,
    Provenance,
    dataset_archive,
    dataset_create,
    dataset_items_change,
    dataset_update,
)
from evaluations.services.filling import FromCallsResult, dataset_add_from_calls, dataset_import, import_format
from evaluations.services.keys import eval_key_for
from evaluations.services.runs import (
    ScorerRequest,
    TargetRequest,
    eval_run_cancel,
    eval_run_create,
    eval_run_retry_failed,
    eval_runs_resume,
)
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
    "ScorerRequest",
    "TargetRequest",
    "brand_policy_create",
    "brand_policy_update",
    "dataset_add_from_calls",
    "dataset_archive",
    "dataset_create",
    "dataset_import",
    "dataset_items_change",
    "dataset_update",
    "eval_key_for",
    "eval_run_cancel",
    "eval_run_create",
    "eval_run_retry_failed",
    "eval_runs_resume",
    "import_format",
    "score_example",
    "scorer_config_create",
    "scorer_config_update",
    "scorer_for_config",
    "scorer_for_version",
]
