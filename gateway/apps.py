from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.apps import AppConfig

if TYPE_CHECKING:
    from gateway.models import LanguageModel


def _catalog_models() -> Iterable[tuple[int, int | None, str]]:
    # Imported here: this module loads before the app registry is ready, models need it.
    # (To move to gateway.selectors, which owns the catalog's reads.)
    from gateway.models import LanguageModel

    return LanguageModel.objects.values_list("id", "team_id", "name")


def _catalog_model_find(*, team_id: int | None, name: str) -> LanguageModel | None:
    from gateway.models import LanguageModel  # the app registry, as above

    if team_id is None:
        return LanguageModel.objects.filter(team__isnull=True, name=name).first()
    return LanguageModel.objects.filter(team_id=team_id, name=name).first()


class GatewayConfig(AppConfig):
    name = "gateway"

    def ready(self) -> None:
        # Imported here, not at the top: the semantic cache's services import models, which
        # need the app registry.
        from costs import hooks as cost_hooks
        from gateway.semantic_cache.services import cache_settings_summary

        # Costs sits below the gateway: it asks for the catalog's models (prices belong to
        # them) and the cache's settings (savings recommendations) through its hooks.
        cost_hooks.catalog_models.register(_catalog_models)
        cost_hooks.catalog_model_find.register(_catalog_model_find)
        cost_hooks.cache_settings_summary.register(cache_settings_summary)
