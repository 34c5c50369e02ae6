import pytest

from compliance.guardrails.models import GuardrailPolicy
from core.testing import snapshot

pytestmark = pytest.mark.django_db


def test_index_lists_policies_rules_and_sources_of_the_callers_teams(team_a, team_b, page_client_for):
    response = page_client_for(team_a.members["viewer"]).get("/compliance/guardrails/")

    assert response.status_code == 200
    assert team_a.application.name.encode() in response.content
    assert team_b.application.name.encode() not in response.content


def test_policy_form_saves_for_a_compliance_officer(team_a, page_client_for):
    client = page_client_for(team_a.members["compliance_officer"])
    url = f"/compliance/guardrails/applications/{team_a.application.id}/"

    response = client.post(
        url,
        {
            "pii_input": "redact",
            "pii_output": "allow",
            "pii_entities": ["EMAIL_ADDRESS"],
            "injection": "block",
            "injection_threshold": "0.6",
        },
    )

    assert response.status_code == 302
    policy = GuardrailPolicy.objects.get(application=team_a.application)
    assert (policy.pii_input, policy.pii_entities, policy.injection, policy.injection_threshold) == (
        "redact",
        ["EMAIL_ADDRESS"],
        "block",
        0.6,
    )
    assert b"Saved the guardrail policy." in client.get(url + "?saved=1").content


def test_policy_form_refuses_bad_input_viewers_and_other_teams(team_a, team_b, page_client_for):
    url = f"/compliance/guardrails/applications/{team_a.application.id}/"
    good = {"pii_input": "allow", "pii_output": "allow", "injection": "off", "injection_threshold": "0.5"}
    before = snapshot(GuardrailPolicy)

    bad = page_client_for(team_a.members["admin"]).post(url, {**good, "injection_threshold": "7"})
    viewer = page_client_for(team_a.members["viewer"]).post(url, good)
    other_team = page_client_for(team_b.members["admin"]).post(url, good)

    assert bad.status_code == 400
    assert b"less than or equal to 1" in bad.content
    assert viewer.status_code == 403
    assert other_team.status_code == 404
    assert snapshot(GuardrailPolicy) == before
