from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "evaluations"

    def ready(self) -> None:
        from evaluations.permissions import register_role_permissions  # app registry: accounts' models load first

        register_role_permissions()
