from django.apps import AppConfig

from observability.hooks import calls_stored


class PromptsConfig(AppConfig):
    name = "prompts"

    def ready(self) -> None:
        # Imported here, not at the top: exposures import models, which need the app registry.
        from prompts.exposures import exposures_record_for_calls

        calls_stored.register(exposures_record_for_calls)
