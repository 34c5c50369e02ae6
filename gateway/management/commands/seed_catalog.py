"""seed_catalog: the shared catalog `make run` starts with (idempotent).

The local model (provider "local", model "smollm2-135m", free), OpenAI's models when
OPENAI_API_KEY is set (the key stored encrypted), and the demo application's routing.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.selectors import application_of_team_and_name
from gateway import local_model, services
from gateway.services import ModelSpec, Price, ProviderSpec, RoutingSpec

LOCAL = local_model.MODEL_NAME
# name, tier, context window, fallbacks (prices come from the costs app's price table)
OPENAI_MODELS = [
    ("gpt-4o", "large", 128_000, ("gpt-4o-mini", LOCAL)),
    ("gpt-4o-mini", "small", 128_000, (LOCAL,)),
    ("gpt-4.1", "large", 1_047_576, ("gpt-4.1-mini", LOCAL)),
    ("gpt-4.1-mini", "medium", 1_047_576, ("gpt-4o-mini", LOCAL)),
]


class Command(BaseCommand):
    help = "Seed the shared model catalog: the local model, OpenAI's models if OPENAI_API_KEY is set, demo routing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--local-url",
            default=f"http://127.0.0.1:{local_model.DEFAULT_PORT}/v1",
            help="Base URL of the local model server (serve_local_model).",
        )
        parser.add_argument("--demo-team", default="Demo")
        parser.add_argument("--demo-application", default="demo-app")

    def handle(self, *args: Any, **options: Any) -> None:
        providers = [ProviderSpec(name="local", base_url=options["local_url"], read_timeout_seconds=120, max_retries=1)]
        models = [
            ModelSpec(
                name=LOCAL,
                provider="local",
                provider_model=LOCAL,
                context_window=local_model.CONTEXT_WINDOW,
                tier="small",
                price=Price(input_per_million=Decimal(0), output_per_million=Decimal(0)),
            )
        ]
        api_key = os.environ.get("OPENAI_API_KEY", "").strip()
        if api_key:
            providers.append(ProviderSpec(name="openai", base_url="https://api.openai.com/v1", api_key=api_key))
            models += [
                ModelSpec(
                    name=name,
                    provider="openai",
                    provider_model=name,
                    context_window=context,
                    tier=tier,
                    fallbacks=fallbacks,
                )
                for name, tier, context, fallbacks in OPENAI_MODELS
            ]
        routing = []
        if application_of_team_and_name(team_name=options["demo_team"], name=options["demo_application"]):
            routing.append(
                RoutingSpec(
                    application=options["demo_application"], team=options["demo_team"], model=LOCAL, only_if_unset=True
                )
            )
        try:
            lines, changes = services.catalog_apply(team=None, providers=providers, models=models, routing=routing)
        except services.CatalogEntryError as error:
            raise CommandError(f"{error.section}[{error.index}]: {error.error.message}") from None
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(f"Catalog seeded: {changes} change(s).")
