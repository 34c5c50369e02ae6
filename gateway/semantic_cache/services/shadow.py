"""Shadow review: a reviewer's verdict on whether serving a shadow hit would have been right."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from accounts import roles
from accounts.caller import Caller
from core.errors import NotFound
from gateway.semantic_cache.models import ShadowReview
from observability.selectors import call_get

if TYPE_CHECKING:
    from accounts.models import Application


def shadow_review_mark(
    *, caller: Caller, application: Application, call_id: uuid.UUID, is_correct: bool, note: str = ""
) -> ShadowReview:
    """Record whether serving the shadow hit of `call_id` would have been right (last verdict wins)."""
    caller.require_permission(roles.REVIEW_SHADOW_HITS, team_id=application.team_id, action="review shadow cache hits")
    call = call_get(caller=caller, call_id=call_id)
    if call.application_id != application.id or call.cache_result != "shadow_hit":
        raise NotFound(f"Application {application.id} has no shadow cache hit with call id {call.id}.", param="call_id")
    review, _ = ShadowReview.objects.update_or_create(
        call_id=call.id,
        defaults={
            "team_id": application.team_id,
            "application": application,
            "entry_id": call.cache_entry_id,
            "similarity": call.cache_similarity,
            "is_correct": is_correct,
            "note": note[:2_000],
            "reviewer": caller.user,
        },
    )
    return review
