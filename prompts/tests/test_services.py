from __future__ import annotations

from typing import Any

import pytest
from guardian.shortcuts import assign_perm

from accounts.caller import caller_for_user
from core.classification import Clearance
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.testing import snapshot
from prompts import context, selectors, services
from prompts.diff import version_diff
from prompts.models import LabelAction, LabelHistory, PromptLabel, PromptVersion
from prompts.tests.conftest import SUPPORT_MESSAGES, version

pytestmark = pytest.mark.django_db


def engineer(world):
    return caller_for_user(world.members["prompt_engineer"])


def manager(world):
    return caller_for_user(world.members["manager"])


# Versions -------------------------------------------------------------------------------


def test_versions_are_numbered_and_identical_content_creates_nothing(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=0)
    first, created_first = services.prompt_version_create(
        caller=engineer(team_a), prompt=prompt, messages=SUPPORT_MESSAGES, commit_message="first"
    )
    second, created_second = services.prompt_version_create(
        caller=engineer(team_a), prompt=prompt, messages=SUPPORT_MESSAGES, commit_message="same again"
    )
    third, created_third = services.prompt_version_create(
        caller=engineer(team_a), prompt=prompt, messages=SUPPORT_MESSAGES, params={"model": "gpt-4o"}
    )

    assert (first.number, created_first) == (1, True)
    assert (second.pk, created_second) == (first.pk, False)
    assert (third.number, created_third) == (2, True)
    assert first.variables == ["customer_name", "product", "question"]
    assert len(first.content_hash) == 64
    assert first.author == team_a.members["prompt_engineer"]


def test_a_version_cannot_be_changed(team_a, make_prompt):
    stored = version(make_prompt(team_a.team), 1)
    stored.commit_message = "rewritten"

    with pytest.raises(ValueError, match="immutable"):
        stored.save()

    assert PromptVersion.objects.get(pk=stored.pk).commit_message == "version 1"


def test_template_syntax_error_names_line_and_column(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=0)
    messages = [{"role": "system", "content": "Hello\n  {{ name + }}"}]

    with pytest.raises(ValidationFailed) as raised:
        services.prompt_version_create(caller=None, prompt=prompt, messages=messages)

    assert raised.value.param == "messages[0].content"
    assert "line 2, column 13" in raised.value.message  # the "}}" where an operand was expected
    assert not PromptVersion.objects.filter(prompt=prompt).exists()


def test_undeclared_variables_are_listed(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=0)

    with pytest.raises(ValidationFailed) as raised:
        services.prompt_version_create(caller=None, prompt=prompt, messages=SUPPORT_MESSAGES, variables=["product"])

    assert "undeclared variables: customer_name, question" in raised.value.message


def test_sandbox_refuses_python_internals(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=0)
    services.prompt_version_create(
        caller=None, prompt=prompt, messages=[{"role": "user", "content": "{{ text.__class__.__mro__ }}"}]
    )
    caller = engineer(team_a)
    resolved = selectors.prompt_resolve(caller=caller, name=prompt.name, label="latest")

    with pytest.raises(ValidationFailed, match=r"not allowed|failed to render|undefined"):
        selectors.prompt_render(caller=caller, resolved=resolved, variables={"text": "x"})


def test_viewer_cannot_add_versions(team_a, make_prompt):
    prompt = make_prompt(team_a.team)
    before = snapshot(PromptVersion)

    with pytest.raises(PermissionDenied):
        services.prompt_version_create(
            caller=caller_for_user(team_a.members["viewer"]), prompt=prompt, messages=SUPPORT_MESSAGES
        )

    assert snapshot(PromptVersion) == before


# Labels ---------------------------------------------------------------------------------


def test_label_move_is_recorded_and_rollback_returns_to_the_previous_version(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=3)
    caller = manager(team_a)
    services.label_move(caller=caller, prompt=prompt, label="production", version=version(prompt, 1), reason="launch")
    services.label_move(caller=caller, prompt=prompt, label="production", version=version(prompt, 3), reason="v3")

    label = services.label_rollback(caller=caller, prompt=prompt, label="production", reason="v3 is worse")

    assert label.version.number == 1
    history = list(LabelHistory.objects.filter(prompt=prompt).order_by("id"))
    assert [(h.action, h.from_version and h.from_version.number, h.to_version.number) for h in history] == [
        (LabelAction.MOVE, None, 1),
        (LabelAction.MOVE, 1, 3),
        (LabelAction.ROLLBACK, 3, 1),
    ]
    assert history[-1].actor_user == team_a.members["manager"]
    assert history[-1].reason == "v3 is worse"


def test_moving_a_label_to_its_current_version_records_nothing(team_a, make_prompt):
    prompt = make_prompt(team_a.team)
    services.label_move(caller=manager(team_a), prompt=prompt, label="staging", version=version(prompt, 1))

    services.label_move(caller=manager(team_a), prompt=prompt, label="staging", version=version(prompt, 1))

    assert LabelHistory.objects.filter(prompt=prompt).count() == 1


def test_rollback_without_a_previous_version_is_a_conflict(team_a, make_prompt):
    prompt = make_prompt(team_a.team)
    services.label_move(caller=manager(team_a), prompt=prompt, label="production", version=version(prompt, 1))

    with pytest.raises(Conflict, match="nothing to roll back"):
        services.label_rollback(caller=manager(team_a), prompt=prompt, label="production")
    with pytest.raises(NotFound):
        services.label_rollback(caller=manager(team_a), prompt=prompt, label="canary")


def test_prompt_engineer_moves_staging_but_not_production(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=2)
    caller = engineer(team_a)

    services.label_move(caller=caller, prompt=prompt, label="staging", version=version(prompt, 2))
    with pytest.raises(PermissionDenied, match=r"prompts\.deploy_prompt"):
        services.label_move(caller=caller, prompt=prompt, label="production", version=version(prompt, 2))

    assert list(PromptLabel.objects.filter(prompt=prompt).values_list("name", flat=True)) == ["staging"]


def test_object_permission_lets_a_prompt_engineer_deploy_one_prompt(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=1)
    other = make_prompt(team_a.team, name="other", versions=1)
    assign_perm("prompts.deploy_prompt", team_a.members["prompt_engineer"], prompt)
    caller = engineer(team_a)

    services.label_move(caller=caller, prompt=prompt, label="production", version=version(prompt, 1))
    with pytest.raises(PermissionDenied):
        services.label_move(caller=caller, prompt=other, label="production", version=version(other, 1))

    assert PromptLabel.objects.get(prompt=prompt, name="production").version.number == 1


def test_latest_is_not_a_movable_label(team_a, make_prompt):
    prompt = make_prompt(team_a.team)

    with pytest.raises(ValidationFailed, match="newest version"):
        services.label_move(caller=manager(team_a), prompt=prompt, label="latest", version=version(prompt, 1))


# Resolution and rendering -----------------------------------------------------------------


def test_resolve_by_label_latest_and_number(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=3)
    services.label_move(caller=None, prompt=prompt, label="production", version=version(prompt, 2))
    caller = engineer(team_a)

    assert selectors.prompt_resolve(caller=caller, name="support").version.version == 2
    assert selectors.prompt_resolve(caller=caller, name="support", label="latest").version.version == 3
    assert selectors.prompt_resolve(caller=caller, name="support", version="1").version.version == 1
    with pytest.raises(NotFound, match="no label named 'canary'"):
        selectors.prompt_resolve(caller=caller, name="support", label="canary")


def test_render_fills_variables_and_rejects_missing_and_unexpected(team_a, make_prompt):
    make_prompt(team_a.team)
    caller = engineer(team_a)
    resolved = selectors.prompt_resolve(caller=caller, name="support", label="latest")

    body = selectors.prompt_render(
        caller=caller, resolved=resolved, variables={"product": "Acme", "customer_name": "Ada", "question": "Hi?"}
    )
    with pytest.raises(ValidationFailed) as raised:
        selectors.prompt_render(caller=caller, resolved=resolved, variables={"product": "Acme", "colour": "red"})

    assert body["messages"] == [
        {"role": "system", "content": "You are a support agent for Acme."},
        {"role": "user", "content": "Customer Ada asks: Hi? v"},
    ]
    assert raised.value.message.startswith("missing variables: customer_name, question; unexpected variables: colour")


# Context assembly -----------------------------------------------------------------------

INSTRUCTIONS = [{"role": "system", "content": "Answer from the documents."}, {"role": "user", "content": "{{ q }}"}]


def assemble(**overrides):
    arguments: dict[str, Any] = {
        "messages": INSTRUCTIONS,
        "params": {"model": "gpt-4o"},
        "context_budget": {"context_window": 400, "output_reserve": 100, "documents_share": 0.5, "history_share": 0.2},
        "declared_variables": ["q"],
        "variables": {"q": "refund policy for shoes"},
        "clearance": Clearance.INTERNAL,
    }
    arguments.update(overrides)
    return context.assemble(**arguments)


def test_documents_are_ranked_and_packed_and_the_report_says_why_others_were_dropped():
    documents = [
        {"id": "low", "text": "weather report " * 5, "score": 0.1},
        {"id": "best", "text": "Shoes can be refunded within 30 days.", "score": 0.9},
        {"id": "huge", "text": "refund " * 400, "score": 0.8},
        {"id": "secret", "text": "Refund fraud rules.", "score": 0.95, "classification": "restricted"},
    ]

    result = assemble(
        documents=documents, context_budget={"context_window": 400, "output_reserve": 100, "min_relevance": 0.05}
    )

    report = {entry["id"]: (entry["status"], entry["reason"]) for entry in result.report["documents"]}
    assert report == {
        "secret": ("dropped", "above_clearance"),
        "best": ("included", None),
        "huge": ("dropped", "over_budget"),
        "low": ("included", None),
    }
    assert "[best]\nShoes can be refunded within 30 days." in result.messages[1]["content"]
    assert result.report["budget"]["available"] == 300
    assert result.token_counts["total"] <= 300


def test_relevance_cutoff_and_bm25_when_no_score_is_given():
    documents = [
        {"id": "a", "text": "Our office is in Paris."},
        {"id": "b", "text": "Refunds for shoes take five days."},
    ]

    result = assemble(
        documents=documents, context_budget={"context_window": 4000, "output_reserve": 100, "min_relevance": 0.01}
    )

    entries = result.report["documents"]
    assert [entry["id"] for entry in entries] == ["b", "a"]
    assert entries[0]["relevance_source"] == "bm25"
    assert (entries[1]["status"], entries[1]["reason"]) == ("dropped", "below_relevance_cutoff")


def test_history_is_trimmed_from_the_oldest_turn_and_keeps_system_turns():
    history = [
        {"role": "system", "content": "Conversation started."},
        *[{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "words " * 20} for i in range(6)],
    ]

    result = assemble(history=history)

    statuses = [(turn["index"], turn["status"]) for turn in result.report["history"]]
    assert statuses[0] == (0, "included")
    kept = [index for index, status in statuses[1:] if status == "included"]
    dropped = [index for index, status in statuses[1:] if status == "dropped"]
    assert dropped
    assert kept
    assert max(dropped) < min(kept)
    assert result.token_counts["history"] <= 60 + result.report["history"][0]["tokens"]
    assert result.messages[-1] == {"role": "user", "content": "refund policy for shoes"}


def test_required_parts_over_the_window_is_a_400_with_counts():
    with pytest.raises(ValidationFailed) as raised:
        assemble(variables={"q": "word " * 500})

    assert raised.value.code == "context_length_exceeded"
    assert "instructions use" in raised.value.message
    assert "window of 400 tokens" in raised.value.message


def test_token_counts_use_the_model_family():
    from prompts import tokens

    assert tokens.encoding_name_for("gpt-4o") == "o200k_base"
    assert tokens.encoding_name_for("llama-3") == "cl100k_base"
    assert tokens.count_text("hello world", model="gpt-4o") == 2


# Diff -----------------------------------------------------------------------------------


def test_diff_lists_message_and_param_changes(team_a, make_prompt):
    prompt = make_prompt(team_a.team, versions=2)

    result = version_diff(version(prompt, 1), version(prompt, 2))

    assert [message["status"] for message in result["messages"]] == ["same", "changed"]
    assert result["messages"][1]["lines"] == [
        {
            "op": "replace",
            "left": "Customer {{ customer_name }} asks: {{ question }} v",
            "right": "Customer {{ customer_name }} asks: {{ question }} v v",
        }
    ]
    assert result["params"] == {"temperature": {"status": "changed", "from": 0.1, "to": 0.2}}
    assert result["identical"] is False


def test_versions_label_moves_and_rollbacks_go_on_the_audit_trail(team_a):
    from compliance.models import AuditEvent
    from prompts.services import label_move, label_rollback, prompt_create, prompt_version_create

    prompt = prompt_create(caller=None, team=team_a.team, name="audited")
    first, _ = prompt_version_create(caller=None, prompt=prompt, messages=[{"role": "system", "content": "one"}])
    second, _ = prompt_version_create(caller=None, prompt=prompt, messages=[{"role": "system", "content": "two"}])
    label_move(caller=None, prompt=prompt, label="staging", version=first)
    label_move(caller=None, prompt=prompt, label="staging", version=second, reason="ship it")
    label_rollback(caller=None, prompt=prompt, label="staging")

    events = list(AuditEvent.objects.filter(target_type="prompt", target_id=str(prompt.id)).order_by("id"))
    assert [event.action for event in events] == [
        "prompt.version_create",
        "prompt.version_create",
        "prompt.label_move",
        "prompt.label_move",
        "prompt.label_rollback",
    ]
    assert events[3].before == {"label": "staging", "version": 1}
    assert events[3].after == {"label": "staging", "version": 2, "reason": "ship it"}
    assert events[4].after == {"label": "staging", "version": 1, "reason": "rollback to version 1"}
