"""Seed current list prices (USD per million tokens) for common OpenAI models and the local model.

Effective from 2024-01-01: calls recorded before this migration ran were costed by whatever
priced them then; new prices are added with costs.services.price_set and a later date.
"""

from datetime import UTC, datetime
from decimal import Decimal

from django.db import migrations

SEED_FROM = datetime(2024, 1, 1, tzinfo=UTC)

# model: (input, cached input, output)
PRICES = {
    "gpt-4o": ("2.50", "1.25", "10.00"),
    "gpt-4o-mini": ("0.15", "0.075", "0.60"),
    "gpt-4.1": ("2.00", "0.50", "8.00"),
    "gpt-4.1-mini": ("0.40", "0.10", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.025", "0.40"),
    "gpt-5": ("1.25", "0.125", "10.00"),
    "gpt-5-mini": ("0.25", "0.025", "2.00"),
    "gpt-5-nano": ("0.05", "0.005", "0.40"),
    "o1": ("15.00", "7.50", "60.00"),
    "o3": ("2.00", "0.50", "8.00"),
    "o3-mini": ("1.10", "0.55", "4.40"),
    "o4-mini": ("1.10", "0.275", "4.40"),
    "gpt-4-turbo": ("10.00", None, "30.00"),
    "gpt-3.5-turbo": ("0.50", None, "1.50"),
    "text-embedding-3-small": ("0.02", None, "0"),
    "text-embedding-3-large": ("0.13", None, "0"),
    "smollm2-135m": ("0", "0", "0"),
}


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("costs", "ModelPrice")
    for model, (input_price, cached_price, output_price) in PRICES.items():
        ModelPrice.objects.get_or_create(
            model=model,
            effective_from=SEED_FROM,
            defaults={
                "input_per_million": Decimal(input_price),
                "output_per_million": Decimal(output_price),
                "cached_input_per_million": Decimal(cached_price) if cached_price is not None else None,
            },
        )


def unseed(apps, schema_editor):
    apps.get_model("costs", "ModelPrice").objects.filter(effective_from=SEED_FROM, model__in=list(PRICES)).delete()


class Migration(migrations.Migration):
    dependencies = [("costs", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
