"""Call.classification: the highest classification of what went into a call.

Existing rows get what is still known: the classification of the prompt version they used,
and of the documents their context report lists as included (a document listed without
its classification, as the gateway recorded calls without a prompt, counts at the
clearance of the key that sent it: documents above it never reached the model; with no key,
as restricted). Rule matches on content stay a read-time redaction for these rows.
"""

from typing import Any

from django.db import migrations, models
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce

LEVELS = {"public": 0, "internal": 10, "confidential": 20, "restricted": 30}
RESTRICTED = 30
BATCH = 2_000


def _document_level(entry: dict[str, Any], *, key_clearance: int) -> int | None:
    included = entry.get("status") == "included" or entry.get("included") is True
    if not included:
        return None
    declared = entry.get("classification")
    if declared is None:
        return key_clearance
    if isinstance(declared, int) and not isinstance(declared, bool):
        return declared
    return LEVELS.get(str(declared), RESTRICTED)  # an unknown label is not trusted to be low


def backfill(apps: Any, schema_editor: Any) -> None:
    Call = apps.get_model("observability", "Call")
    PromptVersion = apps.get_model("prompts", "PromptVersion")
    ApiKey = apps.get_model("accounts", "ApiKey")
    alias = schema_editor.connection.alias
    calls = Call.objects.using(alias)
    calls.filter(prompt_version_id__isnull=False).update(
        classification=Coalesce(
            Subquery(
                PromptVersion.objects.using(alias).filter(id=OuterRef("prompt_version_id")).values("classification")[:1]
            ),
            0,
        )
    )
    key_clearances = dict(ApiKey.objects.using(alias).values_list("id", "clearance"))
    last_id = None
    while True:
        batch = calls.filter(context_report__has_key="documents").order_by("id")
        if last_id is not None:
            batch = batch.filter(id__gt=last_id)
        rows = list(batch.values_list("id", "api_key_id", "classification", "context_report")[:BATCH])
        if not rows:
            break
        last_id = rows[-1][0]
        for call_id, api_key_id, current, report in rows:
            key_clearance = key_clearances.get(api_key_id, RESTRICTED)
            documents = report.get("documents") if isinstance(report, dict) else None
            levels = [
                level
                for entry in documents or []
                if isinstance(entry, dict)
                and (level := _document_level(entry, key_clearance=key_clearance)) is not None
            ]
            if levels and max(levels) > current:
                calls.filter(id=call_id).update(classification=max(levels))


class Migration(migrations.Migration):
    dependencies = [
        ("observability", "0002_call_cache_and_route_fields"),
        ("prompts", "0002_version_classification"),
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="call",
            name="classification",
            field=models.PositiveSmallIntegerField(
                choices=[(0, "public"), (10, "internal"), (20, "confidential"), (30, "restricted")], default=0
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
