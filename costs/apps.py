from django.apps import AppConfig

from observability import hooks as observability_hooks


class CostsConfig(AppConfig):
    name = "costs"

    def ready(self) -> None:
        # Imported here, not at the top: services import models, which need the app registry.
        from costs import services

        observability_hooks.calls_stored.register(services.rollups_apply)
        observability_hooks.settlements_due.register(services.budget_settle_many)
        observability_hooks.call_cost.register(services.call_cost)
