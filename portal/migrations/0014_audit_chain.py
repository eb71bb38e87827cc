"""The tamper-evident audit log: sequence, hash chain, personal values apart, checkpoints, triggers.

Existing events are sealed in the order they were inserted (id): each gets its seq, its
personal values (actor name, target description, detail) move to `AuditEventPersonal` with fresh salts,
and the chain is computed by `portal.auditchain.chain_fill`, the same code appends use. Then, on
PostgreSQL, triggers refuse UPDATE and DELETE on the table (except the actor link being cleared when
a user is deleted) and keep the chain head in step with inserts; on SQLite a trigger refuses UPDATE.
An hourly schedule signs checkpoints (`portal.tasks.audit_checkpoint`).
"""

import django.db.models.deletion
from django.conf import settings
import django.utils.timezone
from django.db import migrations, models

BATCH = 2000
CHECKPOINTS = "Audit log checkpoint"


def seal_existing_events(apps, schema_editor):
    from portal.auditchain import GENESIS, chain_fill

    AuditEvent = apps.get_model("portal", "AuditEvent")
    Personal = apps.get_model("portal", "AuditEventPersonal")
    db = schema_editor.connection.alias
    seq, prev = 0, GENESIS
    last = 0  # keyset over id: the order the events were inserted in
    while True:
        batch = list(AuditEvent.objects.using(db).filter(id__gt=last).order_by("id")[:BATCH])
        if not batch:
            break
        personals = []
        for event in batch:
            personal = Personal(
                event_id=event.pk, actor_repr=event.actor_repr, target_repr=event.target_repr, detail=event.detail
            )
            seq += 1
            prev = chain_fill(event, personal, seq=seq, prev_hash=prev, created_at=event.created_at)
            personals.append(personal)
        AuditEvent.objects.using(db).bulk_update(
            batch,
            ["seq", "actor_commitment", "target_commitment", "detail_commitment", "chain_version", "prev_hash", "hash"],
        )
        Personal.objects.using(db).bulk_create(personals)
        last = batch[-1].pk
    if schema_editor.connection.vendor == "postgresql":
        # Check the new rows' foreign keys now: PostgreSQL refuses to ALTER a table with pending checks.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    apps.get_model("portal", "AuditChainHead").objects.using(db).update_or_create(
        pk=1, defaults={"seq": seq, "hash": prev}
    )


PG_TRIGGERS = """
CREATE OR REPLACE FUNCTION portal_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Deleting a user clears the events' link to it (ON DELETE SET NULL); the chain holds the name.
  IF TG_OP = 'UPDATE' AND OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL
     AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'The audit log is append-only: % of audit event % refused.', TG_OP, OLD.id
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'Audit events are never changed; the retention purge redacts portal_auditeventpersonal.';
END $$;
CREATE TRIGGER portal_audit_append_only BEFORE UPDATE OR DELETE ON portal_auditevent
  FOR EACH ROW EXECUTE FUNCTION portal_audit_append_only();

CREATE OR REPLACE FUNCTION portal_audit_head_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE portal_auditchainhead AS head SET seq = last.seq, hash = last.hash
    FROM (SELECT seq, hash FROM inserted ORDER BY seq DESC LIMIT 1) AS last
   WHERE head.id = 1 AND last.seq > head.seq;
  RETURN NULL;
END $$;
CREATE TRIGGER portal_audit_head_follow AFTER INSERT ON portal_auditevent
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION portal_audit_head_follow();
"""
PG_TRIGGERS_DROP = """
DROP TRIGGER IF EXISTS portal_audit_append_only ON portal_auditevent;
DROP TRIGGER IF EXISTS portal_audit_head_follow ON portal_auditevent;
DROP FUNCTION IF EXISTS portal_audit_append_only();
DROP FUNCTION IF EXISTS portal_audit_head_follow();
"""
# SQLite: UPDATE only (Django's flush of a test database DELETEs every row). The column list is
# explicit, so a later migration that rebuilds this table must create the trigger again (a test checks).
SQLITE_COLUMNS = (
    "id", "seq", "created_at", "action", "target_type", "target_id", "actor_commitment",
    "target_commitment", "detail_commitment", "chain_version", "prev_hash", "hash",
)  # fmt: skip
SQLITE_TRIGGER = (
    "CREATE TRIGGER portal_audit_append_only BEFORE UPDATE ON portal_auditevent "
    "WHEN NOT (OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL AND "
    + " AND ".join(f"NEW.{c} IS OLD.{c}" for c in SQLITE_COLUMNS)
    + ") BEGIN SELECT RAISE(ABORT, 'The audit log is append-only: UPDATE of an audit event refused.'); END"
)


def triggers_create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:  # no parameters: RAISE's "%" is not a placeholder
        if vendor == "postgresql":
            cursor.execute(PG_TRIGGERS)
        elif vendor == "sqlite":
            cursor.execute(SQLITE_TRIGGER)


def triggers_drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_TRIGGERS_DROP)
    elif vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS portal_audit_append_only")


def schedule_create(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=CHECKPOINTS,
        defaults={"func": "portal.tasks.audit_checkpoint", "schedule_type": "H", "repeats": -1},
    )


def schedule_delete(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=CHECKPOINTS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0013_audit_api_tokens"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="seq",
            field=models.PositiveBigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="auditevent", name="actor_commitment", field=models.CharField(default="", max_length=64)
        ),
        migrations.AddField(
            model_name="auditevent", name="target_commitment", field=models.CharField(default="", max_length=64)
        ),
        migrations.AddField(
            model_name="auditevent", name="detail_commitment", field=models.CharField(default="", max_length=64)
        ),
        migrations.AddField(
            model_name="auditevent",
            name="chain_version",
            field=models.PositiveSmallIntegerField(default=1, help_text="Version of the canonical form hashed."),
        ),
        migrations.AddField(
            model_name="auditevent", name="prev_hash", field=models.CharField(default="", max_length=64)
        ),
        migrations.AddField(model_name="auditevent", name="hash", field=models.CharField(default="", max_length=64)),
        migrations.CreateModel(
            name="AuditChainHead",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.PositiveBigIntegerField(default=0)),
                ("hash", models.CharField(max_length=64)),
            ],
            options={"default_permissions": ("view",)},
        ),
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.PositiveBigIntegerField(db_index=True)),
                ("hash", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "key_id",
                    models.CharField(
                        help_text="The first 16 hex digits of SHA-256 over the public key.", max_length=16
                    ),
                ),
                (
                    "signature",
                    models.CharField(help_text="Ed25519 over the canonical statement, hex.", max_length=128),
                ),
            ],
            options={"ordering": ["-seq", "-id"], "default_permissions": ("view",)},
        ),
        migrations.CreateModel(
            name="AuditEventPersonal",
            fields=[
                (
                    "event",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="personal",
                        serialize=False,
                        to="portal.auditevent",
                    ),
                ),
                ("actor_repr", models.CharField(blank=True, max_length=150)),
                ("actor_salt", models.CharField(blank=True, max_length=32)),
                ("target_repr", models.CharField(max_length=255)),
                ("target_salt", models.CharField(blank=True, max_length=32)),
                ("detail", models.JSONField(blank=True, default=dict)),
                ("detail_salt", models.CharField(blank=True, max_length=32)),
                ("redacted_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "audit event personal values",
                "verbose_name_plural": "audit event personal values",
                "default_permissions": ("view",),
            },
        ),
        migrations.RunPython(seal_existing_events, migrations.RunPython.noop),
        migrations.RemoveField(model_name="auditevent", name="actor_repr"),
        migrations.RemoveField(model_name="auditevent", name="target_repr"),
        migrations.RemoveField(model_name="auditevent", name="detail"),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.PositiveBigIntegerField(
                help_text="Position in the hash chain: 1, 2, 3 ... without gaps.", unique=True
            ),
        ),
        migrations.AlterField(model_name="auditevent", name="actor_commitment", field=models.CharField(max_length=64)),
        migrations.AlterField(model_name="auditevent", name="target_commitment", field=models.CharField(max_length=64)),
        migrations.AlterField(model_name="auditevent", name="detail_commitment", field=models.CharField(max_length=64)),
        migrations.AlterField(model_name="auditevent", name="prev_hash", field=models.CharField(max_length=64)),
        migrations.AlterField(model_name="auditevent", name="hash", field=models.CharField(max_length=64)),
        migrations.AlterField(
            model_name="auditevent",
            name="created_at",
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                help_text="Who did it; empty for the system. Not hashed (the chain has the name): cleared on user deletion.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(triggers_create, triggers_drop),
        migrations.RunPython(schedule_create, schedule_delete),
    ]
