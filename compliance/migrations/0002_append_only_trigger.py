"""PostgreSQL only: the audit tables are append-only.

- A sealed event (sequence set) can be neither updated nor deleted.
- A pending event can only be sealed: an UPDATE may change sequence, previous_hash, hash
  and sealed_at, nothing else; and it cannot be deleted either.
- Checkpoints can be neither updated nor deleted.

An attacker with superuser access can still disable the triggers; the hash chain and the
signed checkpoints are what detect that. SQLite has no such trigger (development only).
"""

from django.db import migrations

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
    IF (to_jsonb(NEW) - ARRAY['sequence', 'previous_hash', 'hash', 'sealed_at'])
        IS DISTINCT FROM (to_jsonb(OLD) - ARRAY['sequence', 'previous_hash', 'hash', 'sealed_at']) THEN
        RAISE EXCEPTION 'audit events are append-only: pending event id % may only be sealed', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER compliance_auditevent_append_only
    BEFORE UPDATE OR DELETE ON compliance_auditevent
    FOR EACH ROW EXECUTE FUNCTION compliance_auditevent_append_only();

CREATE OR REPLACE FUNCTION compliance_auditcheckpoint_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit checkpoints are append-only: checkpoint % cannot be changed', OLD.id
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER compliance_auditcheckpoint_append_only
    BEFORE UPDATE OR DELETE ON compliance_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION compliance_auditcheckpoint_append_only();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS compliance_auditevent_append_only ON compliance_auditevent;
DROP FUNCTION IF EXISTS compliance_auditevent_append_only();
DROP TRIGGER IF EXISTS compliance_auditcheckpoint_append_only ON compliance_auditcheckpoint;
DROP FUNCTION IF EXISTS compliance_auditcheckpoint_append_only();
"""


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]  # migration signature
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]  # migration signature
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial")]

    operations = [migrations.RunPython(forward, backward)]
