"""WorkerHeartbeat moved here from the controlplane app (now the composition root, with no models).

Its table keeps its name. A database made before the move already has it (the controlplane
app's migration created it): only the state moves. A new database gets the table here.
"""

from typing import Any

from django.db import migrations, models


def create_table_if_missing(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("core", "WorkerHeartbeat")
    if model._meta.db_table not in schema_editor.connection.introspection.table_names():
        schema_editor.create_model(model)


class Migration(migrations.Migration):
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="WorkerHeartbeat",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("hostname", models.CharField(max_length=255, unique=True)),
                        ("seen_at", models.DateTimeField()),
                    ],
                    options={"db_table": "controlplane_workerheartbeat"},
                ),
            ],
        ),
        migrations.RunPython(create_table_if_missing, migrations.RunPython.noop),
    ]
