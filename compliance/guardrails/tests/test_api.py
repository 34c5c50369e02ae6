import pytest

from compliance.guardrails.models import ClassificationRule, DataSource, GuardrailPolicy
from core.classification import Clearance
from core.testing import assert_hidden, assert_openai_error, assert_refused

pytestmark = pytest.mark.django_db

SOURCE_TEXT = "The restricted salary review proposes raising all engineering salaries by seven percent next spring."


def policy_url(application):
    return f"/api/v1/applications/{application.id}/guardrails/"


def test_get_policy_returns_the_defaults_then_put_stores_changes(team_a, client_for):
    client = client_for(team_a.members["compliance_officer"])

    default = client.get(policy_url(team_a.application)).json()
    response = client.put(
        policy_url(team_a.application),
        {
            "pii": {"input": "redact", "output": "block", "entities": ["EMAIL_ADDRESS", "PERSON"]},
            "injection": "block",
            "injection_threshold": 0.8,
            "restore_pii_in_response": True,
        },
        format="json",
    )

    assert default["pii"]["input"] == "allow"
    assert default["is_default"] is True
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["pii"] == {"input": "redact", "output": "block", "entities": ["EMAIL_ADDRESS", "PERSON"]}
    assert (body["injection"], body["injection_threshold"], body["restore_pii_in_response"]) == ("block", 0.8, True)
    stored = GuardrailPolicy.objects.get(application=team_a.application)
    assert (stored.pii_input, stored.pii_output, stored.injection) == ("redact", "block", "block")


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"injection_threshold": 1.5}, "injection_threshold"),
        ({"pii": {"entities": ["EMAIL_ADDRESS", "SHOE_SIZE"]}}, "pii.entities.1"),
        ({"pii": {"input": "shred"}}, "pii.input"),
        ({"injection": "maybe"}, "injection"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_put_policy_rejects_bad_input_naming_the_field(team_a, client_for, payload, param):
    client = client_for(team_a.members["admin"])

    response = assert_refused(
        client, "put", policy_url(team_a.application), data=payload, status=400, unchanged=[GuardrailPolicy]
    )

    assert_openai_error(response, 400, param=param)


def test_policy_of_another_team_is_hidden(team_a, team_b, client_for):
    client = client_for(team_a.members["admin"])

    assert_hidden(client, "get", policy_url(team_b.application), unchanged=[GuardrailPolicy])
    assert_hidden(client, "put", policy_url(team_b.application), data={"injection": "off"}, unchanged=[GuardrailPolicy])


def test_viewer_reads_but_cannot_change_the_policy(team_a, client_for):
    client = client_for(team_a.members["viewer"])

    assert client.get(policy_url(team_a.application)).status_code == 200
    assert_refused(
        client,
        "put",
        policy_url(team_a.application),
        data={"injection": "off"},
        status=403,
        unchanged=[GuardrailPolicy],
    )


def test_classification_rule_crud(team_a, client_for):
    client = client_for(team_a.members["manager"])

    created = client.post(
        "/api/v1/classification-rules/",
        {
            "team": team_a.team.id,
            "name": "account ids",
            "kind": "regex",
            "pattern": r"ACCT-\d{6}",
            "level": "confidential",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    rule_id = created.json()["id"]
    assert created.json()["level"] == "confidential"

    patched = client.patch(f"/api/v1/classification-rules/{rule_id}/", {"level": "restricted"}, format="json")
    assert patched.json()["level"] == "restricted"
    assert client.get(f"/api/v1/classification-rules/{rule_id}/").json()["pattern"] == r"ACCT-\d{6}"

    assert client.delete(f"/api/v1/classification-rules/{rule_id}/").status_code == 204
    assert not ClassificationRule.objects.filter(pk=rule_id).exists()


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"kind": "regex", "pattern": "ACCT-(", "level": "internal"}, "pattern"),
        ({"kind": "regex", "pattern": "x*", "level": "internal"}, "pattern"),
        ({"kind": "pii_entity", "entities": ["NOPE"], "level": "internal"}, "entities.0"),
        ({"kind": "keywords", "keywords": [], "level": "internal"}, "keywords"),
        ({"kind": "keywords", "keywords": ["x"], "level": "secret"}, "level"),
        ({"kind": "vibes", "level": "internal"}, "kind"),
    ],
)
def test_classification_rule_bad_input_is_400_naming_the_field(team_a, client_for, payload, param):
    client = client_for(team_a.members["admin"])

    response = assert_refused(
        client,
        "post",
        "/api/v1/classification-rules/",
        data={"team": team_a.team.id, "name": "r", **payload},
        status=400,
        unchanged=[ClassificationRule],
    )

    assert_openai_error(response, 400, param=param)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"kind": "regex"}, "pattern"),  # the keywords rule becomes a regex without a pattern
        ({"keywords": []}, "keywords"),
        ({"kind": "pii_entity"}, "entities"),
    ],
)
def test_classification_rule_update_checks_the_whole_detector(team_a, client_for, payload, param):
    rule = ClassificationRule.objects.create(team=team_a.team, name="r", kind="keywords", keywords=["x"], level=20)

    response = assert_refused(
        client_for(team_a.members["admin"]),
        "patch",
        f"/api/v1/classification-rules/{rule.id}/",
        data=payload,
        status=400,
        unchanged=[ClassificationRule],
    )

    assert_openai_error(response, 400, param=param)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"text": "   ", "classification": "internal"}, "text"),
        ({"text": "abc", "leak_share": 0}, "leak_share"),
        ({"text": "abc", "leak_share": 2}, "leak_share"),
        ({"text": "abc", "description": "d" * 2001}, "description"),
    ],
)
def test_data_source_create_with_bad_input_is_400_naming_the_field(team_a, client_for, payload, param):
    response = assert_refused(
        client_for(team_a.members["admin"]),
        "post",
        "/api/v1/data-sources/",
        data={"team": team_a.team.id, "name": "x", **payload},
        status=400,
        unchanged=[DataSource],
    )

    assert_openai_error(response, 400, param=param)


def test_classification_rules_are_team_scoped_and_role_checked(team_a, team_b, client_for):
    rule = ClassificationRule.objects.create(team=team_b.team, name="b", kind="keywords", keywords=["x"], level=20)
    admin_a = client_for(team_a.members["admin"])

    assert_hidden(admin_a, "get", f"/api/v1/classification-rules/{rule.id}/", unchanged=[ClassificationRule])
    assert_hidden(
        admin_a,
        "patch",
        f"/api/v1/classification-rules/{rule.id}/",
        data={"level": "public"},
        unchanged=[ClassificationRule],
    )
    assert_hidden(admin_a, "delete", f"/api/v1/classification-rules/{rule.id}/", unchanged=[ClassificationRule])
    assert_hidden(
        admin_a,
        "post",
        "/api/v1/classification-rules/",
        data={"team": team_b.team.id, "name": "n", "kind": "keywords", "keywords": ["y"], "level": "public"},
        unchanged=[ClassificationRule],
    )
    assert_refused(
        client_for(team_a.members["viewer"]),
        "post",
        "/api/v1/classification-rules/",
        data={"team": team_a.team.id, "name": "n", "kind": "keywords", "keywords": ["y"], "level": "public"},
        status=403,
        unchanged=[ClassificationRule],
    )
    assert admin_a.get("/api/v1/classification-rules/").json()["results"] == []


def test_list_endpoints_use_a_bounded_number_of_queries(team_a, client_for, django_assert_max_num_queries):
    for index in range(5):
        ClassificationRule.objects.create(team=team_a.team, name=f"r{index}", kind="keywords", keywords=["k"], level=10)
        DataSource.objects.create(team=team_a.team, name=f"s{index}", text="t", text_sha256="0" * 64)
    client = client_for(team_a.members["viewer"])

    with django_assert_max_num_queries(6):
        rules = client.get("/api/v1/classification-rules/")
    with django_assert_max_num_queries(6):
        sources = client.get("/api/v1/data-sources/")

    assert len(rules.json()["results"]) == 5
    assert len(sources.json()["results"]) == 5


def test_data_source_text_is_fingerprinted_and_hidden_from_callers_below_its_classification(
    team_a, client_for, key_client_for
):
    officer = client_for(team_a.members["compliance_officer"])  # confidential clearance
    created = officer.post(
        "/api/v1/data-sources/",
        {"team": team_a.team.id, "name": "salaries", "text": SOURCE_TEXT, "classification": "confidential"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["text"] == SOURCE_TEXT
    assert body["fingerprint_count"] == len(SOURCE_TEXT.split()) - 7

    internal_key = key_client_for(team_a.application, role="viewer", clearance=Clearance.INTERNAL)
    seen_below = internal_key.get(f"/api/v1/data-sources/{body['id']}/").json()
    assert seen_below["text"] is None
    assert seen_below["name"] == "salaries"
    assert "text" not in officer.get("/api/v1/data-sources/").json()["results"][0]


def test_data_source_update_input_cross_team_and_role(team_a, team_b, client_for):
    source = DataSource.objects.create(team=team_b.team, name="b", text="t", text_sha256="0" * 64)
    admin_a = client_for(team_a.members["admin"])

    response = assert_refused(
        client_for(team_b.members["admin"]),
        "patch",
        f"/api/v1/data-sources/{source.id}/",
        data={"description": "d" * 2001},
        status=400,
        unchanged=[DataSource],
    )
    assert_openai_error(response, 400, param="description")
    assert_hidden(admin_a, "get", f"/api/v1/data-sources/{source.id}/", unchanged=[DataSource])
    assert_hidden(admin_a, "delete", f"/api/v1/data-sources/{source.id}/", unchanged=[DataSource])
    assert_refused(
        client_for(team_a.members["reviewer"]),
        "post",
        "/api/v1/data-sources/",
        data={"team": team_a.team.id, "name": "x", "text": "abc"},
        status=403,
        unchanged=[DataSource],
    )
