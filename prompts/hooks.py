"""What prompts tell the apps above them (core.hooks: they register receivers at start-up)."""

from __future__ import annotations

from dataclasses import dataclass

from core.hooks import Hook, Question

# A label of the prompt moved (after the transaction commits): keyword `prompt_id`. The semantic
# cache drops the answers it holds for the prompt's versions.
label_moved: Hook[...] = Hook("prompts.label_moved")


@dataclass(frozen=True)
class LabelMoveRefusal:
    """Why a label may not move yet; label_move answers 409 with it. `code` tells a client what to
    do: evaluation_gate_failed (fix the version, or have it overridden), evaluation_gate_pending
    (retry when the gate's runs finish)."""

    message: str
    code: str


# Asked by every label move (API, pages, prompts-as-code sync) before it moves, outside its
# transaction, with keywords `caller` (None: trusted provisioning), `prompt`, `label`, `version`
# (the candidate) and `current` (the version on the label now, None for a new label). None lets
# the label move. Evaluations answers it (its gates) and is always installed (INSTALLED_APPS), so
# the question always has its receiver.
label_move_check: Question[..., LabelMoveRefusal | None] = Question("prompts.label_move_check")
