"""Prices belong to the catalog's models (issue 11, item 3).

Every existing price row, history included, moves onto the shared catalog model of the same
name. A team's own model of that name gets none of them: it is priced by its team (until then
its calls are refused while a budget applies). Rows whose name no shared model has stay as
list prices; a shared model created later under that name takes them over.
"""

import django.db.models.deletion
from django.db import migrations, models


def attach_to_shared_models(apps, schema_editor):
    ModelPrice = apps.get_model("costs", "ModelPrice")
    LanguageModel = apps.get_model("gateway", "LanguageModel")
    for model_id, name in LanguageModel.objects.filter(team__isnull=True).values_list("id", "name"):
        ModelPrice.objects.filter(language_model__isnull=True, model=name).update(language_model_id=model_id)


def detach(apps, schema_editor):
    ModelPrice = apps.get_model("costs", "ModelPrice")
    # Team models' own prices cannot be told apart by name once global: drop them, keep the shared ones.
    ModelPrice.objects.filter(language_model__team__isnull=False).delete()
    ModelPrice.objects.update(language_model=None)


class Migration(migrations.Migration):
    dependencies = [
        ("costs", "0002_seed_prices"),
        ("gateway", "0002_routing_policies"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="modelprice", name="modelprice_unique_model_from"),
        migrations.AddField(
            model_name="modelprice",
            name="language_model",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="prices",
                to="gateway.languagemodel",
            ),
        ),
        migrations.AddField(
            model_name="modelprice",
            name="is_free",
            field=models.BooleanField(default=False),
        ),
        migrations.AddConstraint(
            model_name="modelprice",
            constraint=models.UniqueConstraint(
                condition=models.Q(("language_model__isnull", False)),
                fields=("language_model", "effective_from"),
                name="modelprice_unique_catalog_model_from",
            ),
        ),
        migrations.AddConstraint(
            model_name="modelprice",
            constraint=models.UniqueConstraint(
                condition=models.Q(("language_model__isnull", True)),
                fields=("model", "effective_from"),
                name="modelprice_unique_list_model_from",
            ),
        ),
        migrations.AddConstraint(
            model_name="modelprice",
            constraint=models.CheckConstraint(
                condition=models.Q(("is_free", False))
                | models.Q(
                    ("input_per_million", 0),
                    ("output_per_million", 0),
                    models.Q(
                        ("cached_input_per_million__isnull", True), ("cached_input_per_million", 0), _connector="OR"
                    ),
                ),
                name="modelprice_free_costs_zero",
            ),
        ),
        migrations.RunPython(attach_to_shared_models, detach),
    ]
