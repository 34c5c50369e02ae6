"""What prompts tell the apps above them (core.hooks: they register receivers at start-up)."""

from __future__ import annotations

from core.hooks import Hook

# A label of the prompt moved (after the transaction commits): keyword `prompt_id`. The semantic
# cache drops the answers it holds for the prompt's versions.
label_moved: Hook[...] = Hook("prompts.label_moved")
