from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "evaluations"

    def ready(self) -> None:
        # App registry: these import models (accounts' roles, evaluations' and prompts' services).
        from evaluations.permissions import register_role_permissions
        from evaluations.services.gates import label_move_check
        from prompts.hooks import label_move_check as label_move_question

        register_role_permissions()
        label_move_question.register(label_move_check)
