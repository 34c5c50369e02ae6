from django.apps import AppConfig


class SemanticCacheConfig(AppConfig):
    name = "gateway.semantic_cache"
    label = "semantic_cache"
    verbose_name = "Semantic cache"
