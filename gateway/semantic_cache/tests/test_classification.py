"""Cache entries carry the classification of what went into them: served and shown only to
callers cleared for it (issue 12, item 1)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from accounts.caller import caller_for_user
from accounts.models import Membership
from accounts.types import Role
from compliance.guardrails.services import classification_rule_create
from compliance.guardrails.types import DetectorKind
from core.classification import Clearance
from gateway.semantic_cache import services
from gateway.semantic_cache.models import CacheEntry
from gateway.semantic_cache.services import lookup
from gateway.semantic_cache.tests.conftest import ask, completion, fill, scope_for
from observability.models import Call

QUESTION = "When does Nightingale ship?"
ANSWER = "Nightingale ships on May 4."


def codename_rule(world: Any, level: int = Clearance.CONFIDENTIAL) -> None:
    classification_rule_create(
        caller=caller_for_user(world.members[Role.ADMIN]),
        team=world.team,
        name="codename",
        kind=DetectorKind.KEYWORDS,
        keywords=["Nightingale"],
        level=level,
    )


def test_an_entry_whose_content_a_rule_classifies_is_served_only_to_callers_cleared_for_it(
    team_a: Any, cache_on: Any
) -> None:
    # Given a confidential rule, and an answer made for an internal-clearance caller that it matches
    cache_on(team_a.application)
    codename_rule(team_a)
    fill(scope_for(team_a.application, clearance=Clearance.INTERNAL), QUESTION, ANSWER)
    # When an internal and a confidential caller ask the same
    internal = lookup(scope=scope_for(team_a.application, clearance=Clearance.INTERNAL), messages=ask(QUESTION))
    confidential = lookup(scope=scope_for(team_a.application, clearance=Clearance.CONFIDENTIAL), messages=ask(QUESTION))
    # Then only the confidential one is served
    entry = CacheEntry.objects.get()
    assert (entry.clearance, entry.classification) == (Clearance.INTERNAL, Clearance.CONFIDENTIAL)
    assert internal.hit is None
    assert confidential.hit is not None
    assert confidential.hit.entry_id == str(entry.id)


def test_the_classification_the_gateway_passes_bounds_who_is_served(team_a: Any, cache_on: Any) -> None:
    # Given an entry the gateway classified restricted (its prompt version or documents)
    cache_on(team_a.application)
    services.store(
        scope=scope_for(team_a.application, clearance=Clearance.PUBLIC),
        messages=ask("Summarise the memo."),
        completion=completion("A summary."),
        cost_usd=0,  # type: ignore[arg-type]
        classification=Clearance.RESTRICTED,
    )
    # When callers of every clearance ask the same
    served = {
        level.label: lookup(scope=scope_for(team_a.application, clearance=level), messages=ask("Summarise the memo."))
        for level in Clearance
    }
    # Then only a restricted caller is served
    assert {label: result.hit is not None for label, result in served.items()} == {
        "public": False,
        "internal": False,
        "confidential": False,
        "restricted": True,
    }


def test_the_cache_api_and_page_mask_an_entry_classified_above_the_reader(
    team_a: Any, cache_on: Any, client_for: Any, page_client_for: Any
) -> None:
    # Given an entry classified confidential by the rule, made for an internal caller
    cache_on(team_a.application)
    codename_rule(team_a)
    fill(scope_for(team_a.application, clearance=Clearance.INTERNAL), QUESTION, ANSWER)
    viewer = team_a.members[Role.VIEWER]
    Membership.objects.filter(user=viewer, team=team_a.team).update(clearance=Clearance.INTERNAL)
    # When an internal viewer reads the entries and the page, and a confidential one the entries
    listed = client_for(viewer).get(f"/api/v1/applications/{team_a.application.id}/cache/entries/")
    page = page_client_for(viewer).get(f"/gateway/cache/{team_a.application.id}/").content.decode()
    whole = client_for(team_a.members[Role.MANAGER]).get(f"/api/v1/applications/{team_a.application.id}/cache/entries/")
    # Then the internal viewer sees neither question nor answer
    assert listed.status_code == 200, listed.content
    [row] = listed.json()["results"]
    assert row["is_masked"] is True
    assert row["answer_text"] == "[masked: above your clearance (confidential)]"
    assert "Nightingale" not in listed.content.decode()
    assert "Nightingale" not in page
    assert "[masked: above your clearance (confidential)]" in page
    assert whole.json()["results"][0]["answer_text"] == ANSWER


def test_the_shadow_review_masks_a_call_classified_above_the_reviewer(
    team_a: Any, cache_on: Any, page_client_for: Any
) -> None:
    # Given a shadow hit whose call is classified restricted (members here are confidential)
    cache_on(team_a.application)
    fill(scope_for(team_a.application, clearance=Clearance.PUBLIC), "Where is my order?", "On its way.")
    entry = CacheEntry.objects.get()
    Call.objects.create(
        created_at=timezone.now(),
        team_id=team_a.team.id,
        application_id=team_a.application.id,
        cache_result="shadow_hit",
        cache_entry_id=str(entry.id),
        request_messages=[{"role": "user", "content": "Where is the Bluebird order?"}],
        response_text="Bluebird ships from Denver.",
        classification=Clearance.RESTRICTED,
    )
    # When a confidential manager opens the cache page
    page = page_client_for(team_a.members[Role.MANAGER]).get(f"/gateway/cache/{team_a.application.id}/")
    # Then the call's question and live answer are masked
    html = page.content.decode()
    assert page.status_code == 200
    assert "Bluebird" not in html
    assert "Denver" not in html
    assert "[masked: above your clearance]" in html
