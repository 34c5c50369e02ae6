"""Guardrail policies per application, classification rules and registered data sources per team."""

from __future__ import annotations

from django.db import models

from compliance.guardrails.types import DetectorKind, InjectionAction, LeakAction, PiiAction
from core.classification import Clearance
from core.models import BaseModel

# Entity types a policy or a classification rule may name (presidio's recognizers that work offline).
PII_ENTITIES = (
    "CREDIT_CARD",
    "CRYPTO",
    "DATE_TIME",
    "EMAIL_ADDRESS",
    "IBAN_CODE",
    "IP_ADDRESS",
    "LOCATION",
    "MAC_ADDRESS",
    "MEDICAL_LICENSE",
    "NRP",
    "PERSON",
    "PHONE_NUMBER",
    "UK_NHS",
    "URL",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "US_ITIN",
    "US_PASSPORT",
    "US_SSN",
)
DEFAULT_PII_ENTITIES = [
    "CREDIT_CARD",
    "EMAIL_ADDRESS",
    "IBAN_CODE",
    "IP_ADDRESS",
    "PERSON",
    "PHONE_NUMBER",
    "US_SSN",
]
DEFAULT_INJECTION_THRESHOLD = 0.7


def default_pii_entities() -> list[str]:
    return list(DEFAULT_PII_ENTITIES)


class GuardrailPolicy(BaseModel):
    """What the gateway checks on one application's calls. An application without a row uses the defaults."""

    application = models.OneToOneField(
        "accounts.Application", on_delete=models.CASCADE, related_name="guardrail_policy"
    )
    pii_input = models.CharField(max_length=16, choices=PiiAction.choices, default=PiiAction.ALLOW)
    pii_output = models.CharField(max_length=16, choices=PiiAction.choices, default=PiiAction.ALLOW)
    pii_entities = models.JSONField(default=default_pii_entities)
    restore_pii_in_response = models.BooleanField(default=False)
    injection = models.CharField(max_length=16, choices=InjectionAction.choices, default=InjectionAction.FLAG)
    injection_threshold = models.FloatField(default=DEFAULT_INJECTION_THRESHOLD)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(injection_threshold__gte=0) & models.Q(injection_threshold__lte=1),
                name="guardrailpolicy_threshold_0_1",
            )
        ]

    def __str__(self) -> str:
        return f"guardrails of application {self.application_id}"

    @property
    def team_id(self) -> int:
        return self.application.team_id


class ClassificationRule(BaseModel):
    """A detector that raises a text's classification level to `level` when it matches."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="classification_rules")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=DetectorKind.choices)
    entities = models.JSONField(default=list, blank=True)  # kind pii_entity
    pattern = models.TextField(blank=True)  # kind regex
    keywords = models.JSONField(default=list, blank=True)  # kind keywords
    level = models.PositiveSmallIntegerField(choices=Clearance.choices)
    is_enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="classificationrule_unique_team_name")]
        ordering = ["team_id", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind} -> {Clearance(self.level).label})"


class DataSource(BaseModel):
    """A registered body of text whose reproduction in a response is checked against the caller's clearance.

    `fingerprints` holds the sorted, unique 63-bit hashes of the text's word 8-grams.
    """

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="data_sources")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    classification = models.PositiveSmallIntegerField(choices=Clearance.choices, default=Clearance.CONFIDENTIAL)
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64)
    fingerprints = models.JSONField(default=list)
    leak_action = models.CharField(max_length=16, choices=LeakAction.choices, default=LeakAction.BLOCK)
    leak_share = models.FloatField(default=0.2)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="datasource_unique_team_name"),
            models.CheckConstraint(
                condition=models.Q(leak_share__gt=0) & models.Q(leak_share__lte=1), name="datasource_leak_share_0_1"
            ),
        ]
        ordering = ["team_id", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({Clearance(self.classification).label})"

    @property
    def fingerprint_count(self) -> int:
        return len(self.fingerprints)
