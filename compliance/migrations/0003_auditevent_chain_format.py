"""Chain formats (compliance/chain.py): each event records how it was hashed.

Events sealed before this migration were hashed with format 1 (orjson's encoding) and keep
it: the column is added with 1 for every existing row, sealed or pending, without updating
any row (PostgreSQL 11+ stores the default in the catalog; the append-only trigger is not
involved). Pending events are sealed afterwards with the current format, which the sealer
writes, so the trigger now also lets sealing set `chain_format`. New events start at 0
(pending) until sealed.

Re-hashing the existing chain in the new format was rejected: it would rewrite sealed,
append-only rows and invalidate every signed checkpoint and every export already handed to
an auditor.
"""

from django.db import migrations, models

# Migration 0002's function, with chain_format among the columns that sealing may set.
TRIGGER = r"""
CREATE OR REPLACE FUNCTION compliance_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit events are append-only: event id % (sequence %) cannot be deleted',
            OLD.id, OLD.sequence USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.sequence IS NOT NULL THEN
        RAISE EXCEPTION 'audit events are append-only: sealed event % cannot be updated', OLD.sequence
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (to_jsonb(NEW) - ARRAY[{sealing_columns}])
        IS DISTINCT FROM (to_jsonb(OLD) - ARRAY[{sealing_columns}]) THEN
        RAISE EXCEPTION 'audit events are append-only: pending event id % may only be sealed', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
"""
BEFORE = "'sequence', 'previous_hash', 'hash', 'sealed_at'"
AFTER = "'sequence', 'chain_format', 'previous_hash', 'hash', 'sealed_at'"


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]  # migration signature
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER.replace("{sealing_columns}", AFTER), params=None)


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]  # migration signature
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER.replace("{sealing_columns}", BEFORE), params=None)


class Migration(migrations.Migration):
    dependencies = [("compliance", "0002_append_only_trigger")]

    operations = [
        # Every existing event was hashed with format 1.
        migrations.AddField(
            model_name="auditevent", name="chain_format", field=models.PositiveSmallIntegerField(default=1)
        ),
        # From now on an event is 0 (pending) until the sealer sets the format it hashed with.
        migrations.AlterField(
            model_name="auditevent", name="chain_format", field=models.PositiveSmallIntegerField(default=0)
        ),
        migrations.RunPython(forward, backward),
    ]
