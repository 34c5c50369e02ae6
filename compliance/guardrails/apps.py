from django.apps import AppConfig


class GuardrailsConfig(AppConfig):
    name = "compliance.guardrails"
    label = "guardrails"
    verbose_name = "Guardrails and data classification"
