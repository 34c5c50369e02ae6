"""Evaluation permissions and the roles that hold them.

accounts.roles keeps each role's permissions as data (ROLE_PERMISSIONS); evaluations adds its
own at start (EvaluationsConfig.ready) instead of accounts naming a higher app's permissions:
every member reads datasets, scorers and runs; prompt engineers, managers and admins change
them and start, cancel and retry runs; admins set evaluation gates.
"""

from __future__ import annotations

from accounts.roles import ROLE_PERMISSIONS
from accounts.types import Role

VIEW_DATASET = "evaluations.view_dataset"
CHANGE_DATASET = "evaluations.change_dataset"
VIEW_SCORER = "evaluations.view_scorerconfig"
CHANGE_SCORER = "evaluations.change_scorerconfig"
VIEW_RUN = "evaluations.view_evalrun"
RUN_EVAL = "evaluations.add_evalrun"  # create, cancel and retry runs
SET_GATE = "evaluations.change_evaluationgate"  # set, change and switch off evaluation gates

_READ = frozenset({VIEW_DATASET, VIEW_SCORER, VIEW_RUN})
_WRITE = frozenset({CHANGE_DATASET, CHANGE_SCORER, RUN_EVAL})
READERS = (Role.VIEWER, Role.REVIEWER, Role.COMPLIANCE_OFFICER, Role.PROMPT_ENGINEER, Role.MANAGER, Role.ADMIN)
WRITERS = (Role.PROMPT_ENGINEER, Role.MANAGER, Role.ADMIN)
GATE_SETTERS = (Role.ADMIN,)


def register_role_permissions() -> None:
    """Idempotent: a second call (tests reloading apps) adds nothing new."""
    for role in READERS:
        ROLE_PERMISSIONS[role] = ROLE_PERMISSIONS[role] | _READ
    for role in WRITERS:
        ROLE_PERMISSIONS[role] = ROLE_PERMISSIONS[role] | _WRITE
    for role in GATE_SETTERS:
        ROLE_PERMISSIONS[role] = ROLE_PERMISSIONS[role] | {SET_GATE}
