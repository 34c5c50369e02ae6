def test_policy_rule_and_source_changes_go_on_the_audit_trail_without_source_text(team_a):
    from accounts.caller import caller_for_user
    from accounts.types import Role
    from compliance.guardrails.services import classification_rule_create, data_source_create, guardrail_policy_update
    from compliance.models import AuditEvent
    from core.classification import Clearance

    admin = caller_for_user(team_a.members[Role.ADMIN])
    guardrail_policy_update(caller=admin, application=team_a.application, pii_input="redact")
    classification_rule_create(
        caller=admin,
        team=team_a.team,
        name="codename",
        kind="keywords",
        level=Clearance.CONFIDENTIAL,
        keywords=["bluebird"],
    )
    data_source_create(
        caller=admin,
        team=team_a.team,
        name="minutes",
        text="secret board minutes text",
        classification_level=Clearance.INTERNAL,
    )

    events = list(AuditEvent.objects.filter(team_id=team_a.team.id).order_by("id"))
    actions = [event.action for event in events]
    assert actions[-3:] == ["guardrails.policy_update", "classification.rule_create", "data_source.create"]
    assert events[-3].after == {"pii_input": "redact"}
    assert "secret board minutes" not in str([event.after for event in events])
