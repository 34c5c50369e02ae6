"""CacheEntry.classification. Existing entries start public: they stay bound by `clearance`
(the prompt version and documents an answer was made from are never above the clearance it
was made under), and the team's rule matches on their content are not recomputed here;
entries live at most their application's TTL."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("semantic_cache", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="cacheentry",
            name="classification",
            field=models.PositiveSmallIntegerField(
                choices=[(0, "public"), (10, "internal"), (20, "confidential"), (30, "restricted")], default=0
            ),
        ),
    ]
