from __future__ import annotations

from django.apps import AppConfig

from costs import hooks as cost_hooks


class GatewayConfig(AppConfig):
    name = "gateway"

    def ready(self) -> None:
        # Imported here, not at the top: the selectors import models, which need the app registry.
        from gateway import selectors

        # Costs sits below the gateway: it asks for the catalog's models (prices belong to
        # them) through its hooks. (The semantic cache answers for its settings: its apps.py.)
        cost_hooks.catalog_models.register(selectors.catalog_models)
        cost_hooks.catalog_model_find.register(selectors.catalog_model_find)
