from django.apps import AppConfig

from accounts import hooks as account_hooks
from compliance import hooks as compliance_hooks


class ObservabilityConfig(AppConfig):
    name = "observability"

    def ready(self) -> None:
        # Imported here, not at the top: the selectors and services import models, which need
        # the app registry.
        from observability import selectors, services

        # Accounts and compliance sit below observability: accounts asks how many calls an
        # application recorded (before deleting it), compliance has expired call content blanked.
        account_hooks.application_call_count.register(selectors.call_count_of_application)
        compliance_hooks.call_content_expired.register(services.call_content_purge)
