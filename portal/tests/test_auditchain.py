"""The tamper-evident audit log (`portal.auditchain`): each kind of tampering, done with raw SQL as an
attacker with database access would, is found by `audit_verify`, which names the row and exits 1.

Raw UPDATE/DELETE on PostgreSQL first turn the table's triggers off (`session_replication_role`),
as a superuser could; that the triggers refuse them otherwise is its own test.
"""

import importlib
import json

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from portal import auditchain
from portal.audit import audit_record, audit_record_many
from portal.audit_keys import signing_key_new
from portal.models import AuditCheckpoint, AuditEvent, AuditEventPersonal
from portal.testing.concurrency import kinds, run_at_once

pytestmark = pytest.mark.django_db

PG = connection.vendor == "postgresql"


@pytest.fixture
def signing_key(settings):
    private, public = signing_key_new()
    settings.PORTAL_AUDIT_SIGNING_KEY = private
    settings.PORTAL_AUDIT_VERIFY_KEYS = ""
    return public


@pytest.fixture
def events():
    actor = User.objects.create_user(username="ada-admin")
    target = Group.objects.create(name="Leavers")
    return [
        audit_record(action=AuditEvent.Action.GRANT, target=target, acting_user=actor, detail={"n": n, "who": "Zoë"})
        for n in range(6)
    ]


SQLITE_TRIGGER = importlib.import_module("portal.migrations.0014_audit_chain").SQLITE_TRIGGER


def raw(sql, params=()):
    """Run SQL as an attacker with database access would, the table's triggers out of the way."""
    with connection.cursor() as cursor:
        if PG:
            cursor.execute("SET LOCAL session_replication_role = replica")
        else:
            cursor.execute("DROP TRIGGER portal_audit_append_only")
        cursor.execute(sql, params)
        if PG:
            cursor.execute("SET LOCAL session_replication_role = origin")
        else:
            cursor.execute(SQLITE_TRIGGER)


def verify_fails(*args) -> str:
    """Run audit_verify; it must exit 1; return its first-problem message."""
    with pytest.raises(CommandError) as failed:
        call_command("audit_verify", *args, stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert failed.value.returncode == 1
    return str(failed.value)


# --- The chain as written ----------------------------------------------------------------------


def test_events_carry_consecutive_seq_and_chained_hashes(events):
    rows = list(AuditEvent.objects.order_by("seq").values_list("seq", "prev_hash", "hash"))
    assert [seq for seq, _, _ in rows] == list(range(1, 7))
    assert rows[0][1] == auditchain.GENESIS
    assert all(rows[i][1] == rows[i - 1][2] for i in range(1, len(rows)))
    report = auditchain.audit_verify()
    assert report.ok and report.events == 6


def test_the_hashed_line_is_sorted_json_of_the_listed_fields_with_commitments_not_values(events):
    event = AuditEvent.objects.order_by("seq").first()
    line = auditchain.event_line(
        version=event.chain_version,
        seq=event.seq,
        created_at=event.created_at,
        action=event.action,
        target_type=event.target_type,
        target_id=event.target_id,
        actor_commitment=event.actor_commitment,
        target_commitment=event.target_commitment,
        detail_commitment=event.detail_commitment,
    )
    assert list(json.loads(line)) == sorted(json.loads(line))
    assert set(json.loads(line)) == {
        "v",
        "seq",
        "at",
        "action",
        "target_type",
        "target_id",
        "actor",
        "target",
        "detail",
    }
    assert "ada-admin" not in line and "Zoë" not in line and "Leavers" not in line
    assert auditchain.link(event.prev_hash, line) == event.hash
    personal = event.personal
    assert event.actor_commitment == auditchain.commitment(personal.actor_salt, "actor", "ada-admin")


def test_audit_record_many_appends_in_order_with_one_lock(django_assert_num_queries):
    group = Group.objects.create(name="G")
    # head lock (or SQLite's last event) + events + personal values
    with django_assert_num_queries(3):
        audit_record_many(events=[(AuditEvent.Action.IMPORT, group, {"row": n}) for n in range(20)])
    assert list(AuditEvent.objects.order_by("seq").values_list("personal__detail__row", flat=True)) == list(range(20))
    assert auditchain.audit_verify().ok


def test_one_event_costs_two_queries_more_than_its_insert(django_assert_num_queries):
    group = Group.objects.create(name="G")
    with django_assert_num_queries(3):  # lock/last + event + personal values
        audit_record(action=AuditEvent.Action.GRANT, target=group)


# --- Tampering, by raw SQL ----------------------------------------------------------------------


def test_an_edited_event_field_is_found_and_named(events):
    target = events[3]
    raw("UPDATE portal_auditevent SET target_id = %s WHERE id = %s", ["999", target.pk])
    message = verify_fails()
    assert f"event seq {target.seq} (id {target.pk}) was changed after it was written" in message


def test_an_edited_personal_value_is_found_and_named(events):
    target = events[2]
    raw("UPDATE portal_auditeventpersonal SET actor_repr = %s WHERE event_id = %s", ["mallory", target.pk])
    message = verify_fails()
    assert f"The actor name of event seq {target.seq} (id {target.pk}) was changed after it was recorded" in message


def test_a_salt_dropped_without_a_redaction_is_tampering(events):
    raw(
        "UPDATE portal_auditeventpersonal SET detail = %s, detail_salt = '' WHERE event_id = %s",
        ['{"n": 0}', events[1].pk],
    )
    assert "lost its salt without a redaction" in verify_fails()


def test_a_deleted_event_is_found_and_named(events):
    gone = events[2]
    raw("DELETE FROM portal_auditeventpersonal WHERE event_id = %s", [gone.pk])
    raw("DELETE FROM portal_auditevent WHERE id = %s", [gone.pk])
    message = verify_fails()
    assert f"Events were deleted: seq {gone.seq}, just before event seq {gone.seq + 1} (id {events[3].pk})" in message


def test_an_inserted_event_is_found_and_named(events):
    # Room is made after seq 3 (the later events move up one) and a forged event put there, chained
    # correctly to seq 3: the event after it still names seq 3 as its predecessor.
    raw("UPDATE portal_auditevent SET seq = seq + 1000 WHERE seq > 3")
    raw("UPDATE portal_auditevent SET seq = seq - 999 WHERE seq > 1000")
    third = AuditEvent.objects.get(seq=3)
    forged = {"action": "grant", "target_type": "auth.Group", "target_id": "1"}
    personal = {"actor_repr": "mallory", "target_repr": "x", "detail": {}}
    auditchain.chain_fill(forged, personal, seq=4, prev_hash=third.hash, created_at=third.created_at)
    raw(
        "INSERT INTO portal_auditevent (seq, created_at, action, target_type, target_id, actor_commitment, "
        "target_commitment, detail_commitment, chain_version, prev_hash, hash) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [4, third.created_at, "grant", "auth.Group", "1", forged["actor_commitment"], forged["target_commitment"],
         forged["detail_commitment"], 1, third.hash, forged["hash"]],
    )  # fmt: skip
    forged_id = AuditEvent.objects.get(seq=4).pk
    raw(
        "INSERT INTO portal_auditeventpersonal (event_id, actor_repr, actor_salt, target_repr, target_salt, detail, "
        "detail_salt) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [forged_id, "mallory", personal["actor_salt"], "x", personal["target_salt"], "{}", personal["detail_salt"]],
    )
    message = verify_fails()
    assert f"event seq 4 (id {forged_id}) was inserted" in message


def test_an_appended_event_with_a_made_up_hash_is_found(events):
    last = events[-1]
    raw(
        "INSERT INTO portal_auditevent (seq, created_at, action, target_type, target_id, actor_commitment, "
        "target_commitment, detail_commitment, chain_version, prev_hash, hash) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [last.seq + 1, last.created_at, "grant", "auth.Group", "1", "a" * 64, "b" * 64, "c" * 64, 1, "d" * 64,
         "e" * 64],
    )  # fmt: skip
    forged_id = AuditEvent.objects.get(seq=last.seq + 1).pk
    message = verify_fails()
    assert f"event seq {last.seq + 1} (id {forged_id}) does not chain to event seq {last.seq}" in message


def test_two_swapped_events_are_found_as_reordered(events):
    a, b = events[1], events[2]
    raw("UPDATE portal_auditevent SET seq = 1000000 WHERE id = %s", [a.pk])
    raw("UPDATE portal_auditevent SET seq = %s WHERE id = %s", [a.seq, b.pk])
    raw("UPDATE portal_auditevent SET seq = %s WHERE id = %s", [b.seq, a.pk])
    message = verify_fails()
    assert f"event seq {a.seq} (id {b.pk}) was written after event seq {b.seq} (id {a.pk})" in message
    assert "the order was changed" in message


# --- Checkpoints ------------------------------------------------------------------------------


def test_a_rewritten_and_rehashed_log_is_caught_by_its_signed_checkpoint(events, signing_key):
    call_command("audit_checkpoint", stdout=open("/dev/null", "w"))  # noqa: SIM115
    # The attacker edits event 2 and recomputes every hash after it: the chain alone now verifies.
    rows = list(AuditEvent.objects.order_by("seq"))
    prev = rows[0].hash
    for event in rows[1:]:
        target_id = "999" if event.seq == 2 else event.target_id
        line = auditchain.event_line(
            version=1, seq=event.seq, created_at=event.created_at, action=event.action, target_type=event.target_type,
            target_id=target_id, actor_commitment=event.actor_commitment, target_commitment=event.target_commitment,
            detail_commitment=event.detail_commitment,
        )  # fmt: skip
        digest = auditchain.link(prev, line)
        raw(
            "UPDATE portal_auditevent SET target_id = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [target_id, prev, digest, event.pk],
        )
        prev = digest
    message = verify_fails()
    assert f"event seq 6 (id {events[-1].pk}) does not end the chain its signed checkpoint vouches for" in message


def test_an_edited_checkpoint_is_found(events, signing_key):
    call_command("audit_checkpoint", stdout=open("/dev/null", "w"))  # noqa: SIM115
    raw("UPDATE portal_auditcheckpoint SET seq = 3")
    assert "checkpoint at seq 3 (database): its signature does not match its content" in verify_fails()


def test_events_deleted_from_the_end_are_caught_by_the_checkpoint(events, signing_key):
    call_command("audit_checkpoint", stdout=open("/dev/null", "w"))  # noqa: SIM115
    last = events[-1]
    raw("DELETE FROM portal_auditeventpersonal WHERE event_id = %s", [last.pk])
    raw("DELETE FROM portal_auditevent WHERE id = %s", [last.pk])
    assert f"The log ends at seq {last.seq - 1}" in verify_fails()


def test_an_exported_checkpoint_still_catches_a_log_whose_checkpoints_were_deleted(events, signing_key, tmp_path):
    call_command("audit_checkpoint", stdout=open("/dev/null", "w"))  # noqa: SIM115
    export = tmp_path / "checkpoints.jsonl"
    call_command("audit_checkpoint_export", output=str(export), stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert json.loads(export.read_text().splitlines()[0])["seq"] == 6
    call_command("audit_verify", checkpoints=str(export), stdout=open("/dev/null", "w"))  # noqa: SIM115  (verifies)
    raw("DELETE FROM portal_auditcheckpoint")
    assert "The exported checkpoint at seq 6 is missing from the database" in verify_fails("--checkpoints", str(export))


def test_a_checkpoint_is_refused_without_a_key_and_over_a_tampered_log(events, settings):
    settings.PORTAL_AUDIT_SIGNING_KEY = ""
    with pytest.raises(CommandError, match="PORTAL_AUDIT_SIGNING_KEY is not set"):
        call_command("audit_checkpoint")
    assert not AuditCheckpoint.objects.exists()
    settings.PORTAL_AUDIT_SIGNING_KEY = signing_key_new()[0]
    raw("UPDATE portal_auditevent SET action = 'revoke' WHERE id = %s", [events[0].pk])
    with pytest.raises(CommandError, match="the audit log does not verify"):
        call_command("audit_checkpoint")
    assert not AuditCheckpoint.objects.exists()


def test_a_checkpoint_is_idempotent_and_verifies_with_the_public_key_alone(events, settings, signing_key):
    call_command("audit_checkpoint", stdout=open("/dev/null", "w"))  # noqa: SIM115
    call_command("audit_checkpoint", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert AuditCheckpoint.objects.count() == 1
    settings.PORTAL_AUDIT_SIGNING_KEY, settings.PORTAL_AUDIT_VERIFY_KEYS = "", signing_key
    report = auditchain.audit_verify()
    assert report.ok and report.checkpoints == 1
    settings.PORTAL_AUDIT_VERIFY_KEYS = ""
    assert "is not configured" in verify_fails()


def test_a_malformed_export_is_refused_with_its_line(events, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"seq": 1}\n')
    with pytest.raises(CommandError, match="line 1: not an exported audit checkpoint"):
        call_command("audit_verify", checkpoints=str(bad))


# --- The purge redacts without breaking the chain -----------------------------------------------


def test_a_redacted_value_still_verifies_and_is_counted(events):
    from portal.personal_data import Replacements, personal_data_rewrite

    replacements = Replacements()
    replacements.add("ada-admin", "former-user")
    changed = personal_data_rewrite(replacements)
    assert changed["portal.AuditEventPersonal.actor_repr"] == 6
    personal = AuditEventPersonal.objects.get(event=events[0])
    assert (personal.actor_repr, personal.actor_salt) == ("former-user", "")
    assert personal.redacted_at is not None
    report = auditchain.audit_verify()
    assert report.ok and report.redacted == 6


# --- The table refuses changes ----------------------------------------------------------------


@pytest.mark.parametrize("sql", ["UPDATE portal_auditevent SET action = 'revoke'", "DELETE FROM portal_auditevent"])
def test_the_table_itself_refuses_update_and_delete(events, sql):
    if sql.startswith("DELETE") and not PG:
        pytest.skip("SQLite: UPDATE only (the test database's flush deletes rows); verify finds deletions")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert AuditEvent.objects.filter(action="grant").count() == 6


def test_deleting_a_user_still_clears_the_events_link_and_the_chain_verifies(events):
    User.objects.get(username="ada-admin").delete()
    assert AuditEvent.objects.filter(actor__isnull=True).count() == 6
    assert AuditEvent.objects.order_by("seq").first().actor_repr == "ada-admin"
    assert auditchain.audit_verify().ok


# --- Concurrent writers -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_chain():
    group = Group.objects.create(name="G")

    def writer(name):
        def write():
            for n in range(15):
                with transaction.atomic():
                    audit_record(action=AuditEvent.Action.GRANT, target=group, detail={"writer": name, "n": n})
            return name

        return write

    outcomes = run_at_once(writer("a"), writer("b"), writer("c"))
    assert kinds(outcomes) == ["ok", "ok", "ok"], outcomes
    assert AuditEvent.objects.count() == 45
    assert auditchain.audit_verify().ok


def test_the_hourly_task_signs_with_a_key_and_only_warns_without(events, settings, caplog):
    from portal.tasks import audit_checkpoint

    settings.PORTAL_AUDIT_SIGNING_KEY = ""
    assert "PORTAL_AUDIT_SIGNING_KEY is not set" in audit_checkpoint()
    assert "PORTAL_AUDIT_SIGNING_KEY is not set" in caplog.text
    assert not AuditCheckpoint.objects.exists()
    settings.PORTAL_AUDIT_SIGNING_KEY = signing_key_new()[0]
    assert audit_checkpoint() == f"Signed: the audit chain at seq {events[-1].seq}."
    assert audit_checkpoint() == f"Already signed: the audit chain at seq {events[-1].seq}."
