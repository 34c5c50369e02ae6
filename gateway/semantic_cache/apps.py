from django.apps import AppConfig


class SemanticCacheConfig(AppConfig):
    name = "gateway.semantic_cache"
    label = "semantic_cache"
    verbose_name = "Semantic cache"

    def ready(self) -> None:
        # Imported here, not at the top: services import models, which needs the app registry ready.
        from gateway.semantic_cache.services import entries_invalidate_for_prompt
        from prompts.hooks import label_moved

        label_moved.register(entries_invalidate_for_prompt)
