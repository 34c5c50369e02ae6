"""The one place where moving a label is allowed or refused.

Evaluations (a later issue) add their gate here: "a passing eval run is required before
`production` may point at this version".
"""

from __future__ import annotations

from accounts import roles
from accounts.caller import Caller
from prompts.models import Prompt, PromptVersion


def promotion_check(*, caller: Caller | None, prompt: Prompt, label: str, version: PromptVersion) -> None:
    """Raise PermissionDenied (or another ApplicationError) when `caller` may not point `label` at `version`.

    `caller=None` is trusted provisioning (management commands run by an operator).
    """
    if caller is None:
        return
    if prompt.is_protected(label):
        caller.require_permission(
            roles.DEPLOY_PROMPT,
            team_id=prompt.team_id,
            obj=prompt,
            action=f"move the protected label '{label}' of '{prompt.name}'",
        )
        return
    if caller.has_permission(roles.DEPLOY_PROMPT, team_id=prompt.team_id, obj=prompt):
        return
    caller.require_permission(
        roles.CHANGE_PROMPT, team_id=prompt.team_id, obj=prompt, action=f"move the label '{label}' of '{prompt.name}'"
    )
