"""Budget reservations made durable: one row per call and budget period, open until settled or released."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("costs", "0003_prices_per_catalog_model"),
    ]

    operations = [
        migrations.CreateModel(
            name="BudgetReservation",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("reservation_id", models.UUIDField()),
                ("units", models.BigIntegerField()),
                (
                    "state",
                    models.CharField(
                        choices=[("open", "Open"), ("settled", "Settled"), ("released", "Released")],
                        default="open",
                        max_length=8,
                    ),
                ),
                ("created_at", models.DateTimeField()),
                ("closed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "period",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="reservations",
                        to="costs.budgetperiod",
                    ),
                ),
            ],
            options={
                "ordering": ["created_at", "id"],
                "indexes": [
                    models.Index(
                        condition=models.Q(("state", "open")), fields=["created_at"], name="reservation_open_by_age"
                    ),
                    models.Index(
                        condition=models.Q(("state", "open"), _negated=True),
                        fields=["closed_at"],
                        name="reservation_closed_by_age",
                    ),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("reservation_id", "period"), name="budgetreservation_once_per_period"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("units__gt", 0)), name="budgetreservation_units_positive"
                    ),
                ],
            },
        ),
    ]
