"""Classification: filter_documents, redact_for_viewer, the leak check, policy caching, training."""

import numpy as np
import pytest
from django.core.management import call_command

from accounts.caller import caller_for_user
from compliance.guardrails import injection, services
from compliance.guardrails.models import ClassificationRule, GuardrailPolicy
from compliance.guardrails.services import state
from core.classification import Clearance

pytestmark = pytest.mark.django_db

SECRET_PLAN = (
    "Project Nightingale will acquire the Lisbon logistics company in the second quarter for forty million euros, "
    "pending approval by the board and a final review of the warehouse leases in Porto and Faro."
)


def admin_caller(team_world):
    return caller_for_user(team_world.members["admin"])


def codename_rule(team_world, keyword="Nightingale"):
    """A restricted keyword rule of the team, made through the service (which resets the team's
    cached state)."""
    return services.classification_rule_create(
        caller=admin_caller(team_world),
        team=team_world.team,
        name="codename",
        kind="keywords",
        keywords=[keyword],
        level=Clearance.RESTRICTED,
    )


def secret_plan_source(team_world, level, **options):
    """SECRET_PLAN as a data source of the team at `level`."""
    return services.data_source_create(
        caller=admin_caller(team_world),
        team=team_world.team,
        name="M&A plan",
        text=SECRET_PLAN,
        classification_level=level,
        **options,
    )


def test_filter_documents_drops_by_declared_level_and_by_team_rules(team_a):
    codename_rule(team_a)
    documents = [
        {"id": "a", "text": "Opening hours are nine to five.", "classification": "public"},
        {"id": "b", "text": "Salary bands for 2026.", "classification": "confidential"},
        {"id": "c", "text": "Status of project nightingale: on track.", "classification": "public"},
        {"id": "d", "text": "No label means internal."},
    ]

    kept, dropped = services.filter_documents(
        documents=documents, caller_clearance=Clearance.INTERNAL, team_id=team_a.team.id
    )

    assert [document["id"] for document in kept] == ["a", "d"]
    assert kept[1]["classification"] == "internal"
    assert dropped == [
        {
            "id": "b",
            "position": 1,
            "classification": "confidential",
            "declared_classification": "confidential",
            "detected_by": [],
            "reason": "above_clearance",
        },
        {
            "id": "c",
            "position": 2,
            "classification": "restricted",
            "declared_classification": "public",
            "detected_by": ["codename"],
            "reason": "above_clearance",
        },
    ]


def test_redact_for_viewer_masks_spans_above_the_viewers_clearance_only(team_a):
    caller = admin_caller(team_a)
    services.classification_rule_create(
        caller=caller,
        team=team_a.team,
        name="account ids",
        kind="regex",
        pattern=r"ACCT-\d{6}",
        level=Clearance.CONFIDENTIAL,
    )
    services.classification_rule_create(
        caller=caller,
        team=team_a.team,
        name="emails",
        kind="pii_entity",
        entities=["EMAIL_ADDRESS"],
        level=Clearance.INTERNAL,
    )
    stored = "Customer ACCT-123456 wrote from kim@example.com about a refund."

    internal_view = services.redact_for_viewer(text=stored, viewer_clearance=Clearance.INTERNAL, team_id=team_a.team.id)
    public_view = services.redact_for_viewer(text=stored, viewer_clearance=Clearance.PUBLIC, team_id=team_a.team.id)
    confidential_view = services.redact_for_viewer(
        text=stored, viewer_clearance=Clearance.CONFIDENTIAL, team_id=team_a.team.id
    )

    assert internal_view == "Customer [REDACTED:confidential] wrote from kim@example.com about a refund."
    assert public_view == "Customer [REDACTED:confidential] wrote from [REDACTED:internal] about a refund."
    assert confidential_view == stored


def test_other_teams_rules_do_not_apply(team_a, team_b):
    codename_rule(team_b)

    text = "Nightingale update"
    assert services.redact_for_viewer(text=text, viewer_clearance=Clearance.PUBLIC, team_id=team_a.team.id) == text


def test_response_reproducing_a_source_above_clearance_is_blocked_and_recorded(team_a):
    source = secret_plan_source(team_a, Clearance.RESTRICTED)
    policy = GuardrailPolicy(application=team_a.application)
    response = "Sure. " + SECRET_PLAN[:150] + " That is all I know."

    output = services.check_output(
        policy=policy, text=response, caller_clearance=Clearance.CONFIDENTIAL, team_id=team_a.team.id, restore_map={}
    )

    assert output.text == ""
    assert output.blocked is not None
    assert output.blocked.code == "classification_leak"
    assert [(finding["type"], finding["source_id"], finding["action"]) for finding in output.findings] == [
        ("classification_leak", source.id, "block")
    ]


def test_leak_redact_masks_the_reproduced_passage_and_cleared_callers_see_it(team_a):
    secret_plan_source(team_a, Clearance.CONFIDENTIAL, leak_action="redact")
    policy = GuardrailPolicy(application=team_a.application)
    response = "Answer: Project Nightingale will acquire the Lisbon logistics company in the second quarter. Bye."

    low = services.check_output(
        policy=policy, text=response, caller_clearance=Clearance.INTERNAL, team_id=team_a.team.id, restore_map={}
    )
    cleared = services.check_output(
        policy=policy, text=response, caller_clearance=Clearance.CONFIDENTIAL, team_id=team_a.team.id, restore_map={}
    )

    assert low.blocked is None
    assert low.text == "Answer: [REDACTED:confidential]. Bye."
    assert [finding["action"] for finding in low.findings] == ["redact"]
    assert cleared.text == response
    assert cleared.findings == []


def test_a_response_on_the_same_topic_without_copying_is_not_a_leak(team_a):
    secret_plan_source(team_a, Clearance.RESTRICTED)
    policy = GuardrailPolicy(application=team_a.application)

    output = services.check_output(
        policy=policy,
        text="I cannot discuss acquisitions or the board's plans for Lisbon.",
        caller_clearance=Clearance.PUBLIC,
        team_id=team_a.team.id,
        restore_map={},
    )

    assert output.blocked is None
    assert output.findings == []


def test_policy_is_cached_per_process_and_reloaded_when_the_generation_changes(team_a):
    application_id = team_a.application.id
    assert services.policy_for_application(application_id).pii_input == "allow"
    GuardrailPolicy.objects.create(application=team_a.application, pii_input="block")

    # Written behind the service's back (as another process would before bumping): still cached.
    assert services.policy_for_application(application_id).pii_input == "allow"

    state.policies.bump(application_id)
    assert services.policy_for_application(application_id).pii_input == "block"


def test_policy_update_through_the_service_invalidates_the_cache(team_a):
    application_id = team_a.application.id
    assert services.policy_for_application(application_id).injection == "flag"

    services.guardrail_policy_update(
        caller=admin_caller(team_a), application=team_a.application, injection_action="block", injection_threshold=0.9
    )

    policy = services.policy_for_application(application_id)
    assert (policy.injection, policy.injection_threshold) == ("block", 0.9)


def test_rule_changes_invalidate_the_team_state(team_a):
    rule = codename_rule(team_a, keyword="Falcon")
    assert (
        services.redact_for_viewer(text="Falcon", viewer_clearance=0, team_id=team_a.team.id) == "[REDACTED:restricted]"
    )

    services.classification_rule_update(caller=admin_caller(team_a), rule=rule, is_enabled=False)

    assert services.redact_for_viewer(text="Falcon", viewer_clearance=0, team_id=team_a.team.id) == "Falcon"
    assert ClassificationRule.objects.get(pk=rule.pk).is_enabled is False


@pytest.mark.timeout(600)  # embeds 241 texts; slow when other suites share the 2 cores
def test_training_command_is_deterministic_and_reproduces_the_shipped_weights(tmp_path):
    retrained = tmp_path / "retrained.npz"

    call_command("train_injection_classifier", output=str(retrained))

    # The committed file is current: retraining gives the same weights. Not byte-equal: BLAS picks
    # different kernels on different processors, which moves the float32 weights by about 1e-7.
    with np.load(retrained) as fresh, np.load(injection.WEIGHTS_PATH) as shipped:
        assert sorted(fresh.files) == sorted(shipped.files)
        for name in shipped.files:
            np.testing.assert_allclose(fresh[name], shipped[name], rtol=0, atol=1e-5)
