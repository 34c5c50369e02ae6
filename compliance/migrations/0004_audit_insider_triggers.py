"""The audit tables against a database insider (PostgreSQL only; SQLite is for development).

- `seal_refusal`: the sealer marks an event it refuses to seal (backdated) instead of sealing it.
- The append-only trigger of 0002/0003 also lets sealing set `seal_refusal`, and a refused
  event can no longer change at all (it stays as evidence).
- INSERT: an event is inserted pending (no sequence, format, hashes, seal time or refusal);
  only the sealer's UPDATE seals it. A forged row cannot be inserted already sealed.
- TRUNCATE of the events or the checkpoints is refused, unless the session has set
  `controlplane.allow_audit_truncate` to 'on'. Any role can set that variable, so this
  guards against accidents and a naive insider only; what stops the application's role is
  that it has no TRUNCATE privilege and does not own the tables (docs/database-roles.md).
  The test suite sets it for its own role in the test database (conftest.py), because
  Django empties the tables of transactional tests with TRUNCATE.

Triggers do not stop a superuser or the tables' owner, who can disable them; the keyed chain
and the signed heads outside the database are what detect their changes.
"""

from django.db import migrations, models

SEALING_COLUMNS = "'sequence', 'chain_format', 'previous_hash', 'hash', 'sealed_at', 'seal_refusal'"

FORWARD = r"""
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
    IF OLD.seal_refusal <> '' THEN
        RAISE EXCEPTION 'audit events are append-only: event id % was refused by the sealer and cannot change',
            OLD.id USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (to_jsonb(NEW) - ARRAY[{sealing_columns}])
        IS DISTINCT FROM (to_jsonb(OLD) - ARRAY[{sealing_columns}]) THEN
        RAISE EXCEPTION 'audit events are append-only: pending event id % may only be sealed', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION compliance_auditevent_insert_pending() RETURNS trigger AS $$
BEGIN
    IF NEW.sequence IS NOT NULL OR NEW.chain_format <> 0 OR NEW.previous_hash <> '' OR NEW.hash <> ''
        OR NEW.sealed_at IS NOT NULL OR NEW.seal_refusal <> '' THEN
        RAISE EXCEPTION 'audit events are inserted pending: only the sealer seals them (sequence %)', NEW.sequence
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER compliance_auditevent_insert_pending
    BEFORE INSERT ON compliance_auditevent
    FOR EACH ROW EXECUTE FUNCTION compliance_auditevent_insert_pending();

CREATE OR REPLACE FUNCTION compliance_audit_no_truncate() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('controlplane.allow_audit_truncate', true), '') <> 'on' THEN
        RAISE EXCEPTION 'the audit trail is append-only: % cannot be truncated', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER compliance_auditevent_no_truncate
    BEFORE TRUNCATE ON compliance_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION compliance_audit_no_truncate();

CREATE TRIGGER compliance_auditcheckpoint_no_truncate
    BEFORE TRUNCATE ON compliance_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION compliance_audit_no_truncate();
""".replace("{sealing_columns}", SEALING_COLUMNS)

# Back to 0003's function (sealing may not set seal_refusal, which 0003 does not have).
BACKWARD = r"""
DROP TRIGGER IF EXISTS compliance_auditevent_insert_pending ON compliance_auditevent;
DROP FUNCTION IF EXISTS compliance_auditevent_insert_pending();
DROP TRIGGER IF EXISTS compliance_auditevent_no_truncate ON compliance_auditevent;
DROP TRIGGER IF EXISTS compliance_auditcheckpoint_no_truncate ON compliance_auditcheckpoint;
DROP FUNCTION IF EXISTS compliance_audit_no_truncate();
"""


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]  # migration signature
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]  # migration signature
    if schema_editor.connection.vendor == "postgresql":
        from importlib import import_module

        previous = import_module("compliance.migrations.0003_auditevent_chain_format")
        schema_editor.execute(BACKWARD, params=None)
        schema_editor.execute(previous.TRIGGER.replace("{sealing_columns}", previous.AFTER), params=None)


class Migration(migrations.Migration):
    dependencies = [("compliance", "0003_auditevent_chain_format")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="seal_refusal",
            field=models.CharField(blank=True, default="", max_length=500),
        ),
        migrations.RunPython(forward, backward),
    ]
