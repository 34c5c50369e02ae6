from django.apps import AppConfig

from costs import hooks as cost_hooks
from prompts.hooks import label_moved


class SemanticCacheConfig(AppConfig):
    name = "gateway.semantic_cache"
    label = "semantic_cache"
    verbose_name = "Semantic cache"

    def ready(self) -> None:
        # Imported here, not at the top: services import models, which needs the app registry ready.
        from gateway.semantic_cache import services

        # Prompts and costs sit below the gateway: prompts tells the cache that a label moved,
        # costs asks for the applications' cache settings (savings recommendations).
        label_moved.register(services.entries_invalidate_for_prompt)
        cost_hooks.cache_settings_summary.register(services.cache_settings_summary)
