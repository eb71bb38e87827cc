"""The ground's audit trail on Django's own models: `audit_record` and the append-only `AuditEvent`,
and history attribution by `set_history_user`.

What the groups may do with the apps' models, and history rows of an employee change, are proved in
`config/tests/test_group_permissions.py` and `config/tests/test_audit_trail.py`.
"""

import datetime
import importlib
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.urls import reverse

from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def actor():
    return User.objects.create_user(username="ada-admin")


@pytest.fixture
def event(actor):
    return audit_record(
        action=AuditEvent.Action.TERMINATE, target=Group.objects.create(name="Leavers"), acting_user=actor
    )


# --- audit_record -----------------------------------------------------------------------


def test_audit_record_describes_actor_action_and_target(actor):
    target = Group.objects.create(name="Tess Target")

    event = audit_record(action=AuditEvent.Action.TERMINATE, target=target, acting_user=actor, detail={"why": "left"})

    event.refresh_from_db()
    assert (event.actor, event.actor_repr, event.action) == (actor, "ada-admin", "terminate")
    assert (event.target_type, event.target_id, event.target_repr) == ("auth.Group", str(target.pk), "Tess Target")
    assert event.detail == {"why": "left"}
    assert event.created_at is not None


@pytest.mark.parametrize("acting_user", [None, AnonymousUser()], ids=["none", "anonymous"])
def test_audit_record_without_a_user_is_the_system(acting_user):
    event = audit_record(
        action=AuditEvent.Action.STATUS_CHANGED, target=Group.objects.create(name="G"), acting_user=acting_user
    )
    assert (event.actor, event.actor_repr, event.detail) == (None, "system", {})


def test_audit_record_stores_dates_decimals_and_uuids_as_text():
    key = uuid.uuid4()
    detail = {"on": datetime.date(2026, 3, 1), "cost": Decimal("12.50"), "key": key, "n": 3}

    event = audit_record(action=AuditEvent.Action.STATUS_CHANGED, target=Group.objects.create(name="G"), detail=detail)

    event.refresh_from_db()
    assert event.detail == {"on": "2026-03-01", "cost": "12.50", "key": str(key), "n": 3}


def test_audit_record_truncates_a_long_target_description():
    # A permission reads "<app> | <model> | <name>", and its name alone may be 255 characters long.
    target = Permission.objects.create(
        name="Z" * 255, codename="long", content_type=ContentType.objects.get_for_model(AuditEvent)
    )
    event = audit_record(action=AuditEvent.Action.LEVEL_CHANGED, target=target)
    assert event.target_repr == str(target)[:255]
    assert len(event.target_repr) == 255


def test_audit_record_refuses_an_unsaved_target():
    with pytest.raises(ValueError, match="Save the group before recording an audit event about it."):
        audit_record(action=AuditEvent.Action.STATUS_CHANGED, target=Group(name="Unsaved"))
    assert not AuditEvent.objects.exists()


def test_audit_record_refuses_an_unknown_action():
    with pytest.raises(ValueError, match="Unknown audit action 'teleport'."):
        audit_record(action="teleport", target=Group.objects.create(name="G"))
    assert not AuditEvent.objects.exists()


def test_audit_record_refuses_an_event_key_in_the_detail():
    # What happened is the typed action; an "event" string beside it is how untyped events crept in.
    with pytest.raises(ValueError, match="Audit detail may not carry an 'event' key \\('task_skipped'\\)"):
        audit_record(
            action=AuditEvent.Action.TASK_SKIPPED,
            target=Group.objects.create(name="G"),
            detail={"event": "task_skipped"},
        )
    assert not AuditEvent.objects.exists()


def test_audit_event_rolls_back_with_the_change_it_records(actor):
    target = Group.objects.create(name="G")
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action=AuditEvent.Action.TERMINATE, target=target, acting_user=actor)
        raise RuntimeError("the change failed")

    assert not AuditEvent.objects.exists()


def test_audit_event_str_names_time_actor_action_and_target(event):
    assert str(event) == f"{event.created_at:%Y-%m-%d %H:%M} ada-admin terminate {event.target_repr}"


# --- Typed actions -----------------------------------------------------------------------


def test_every_action_is_typed_and_labelled():
    assert "other" not in AuditEvent.Action.values
    assert not hasattr(AuditEvent.Action, "OTHER")
    for action in AuditEvent.Action:
        assert action.label and action.label != action.value, action
    longest = max(len(value) for value in AuditEvent.Action.values)
    assert longest <= AuditEvent._meta.get_field("action").max_length


def test_the_admin_audit_list_filtered_by_an_action_shows_only_those_events(client, auditor):
    employee = Group.objects.create(name="Target")
    skipped = [
        audit_record(action=AuditEvent.Action.TASK_SKIPPED, target=employee, detail={"reason": f"r{n}"})
        for n in range(2)
    ]
    audit_record(action=AuditEvent.Action.TASK_RETRIED, target=employee)
    audit_record(action=AuditEvent.Action.TERMINATE, target=employee)
    client.force_login(auditor)

    response = client.get(reverse("admin:portal_auditevent_changelist"), {"action": "task_skipped"})

    assert response.status_code == 200
    shown = list(response.context["cl"].result_list)
    assert {event.pk for event in shown} == {event.pk for event in skipped}
    assert {event.action for event in shown} == {AuditEvent.Action.TASK_SKIPPED}
    assert "Checklist task skipped" in response.content.decode()  # the filter lists the action by its label


def test_the_migration_types_old_events_by_their_detail_and_keeps_the_detail():
    # Old rows carry the event as a string in detail; the data step of 0002 gives them the typed action.
    # The table no longer has 0001's columns (the detail moved to AuditEventPersonal in 0014), so the
    # step runs against rows held in memory, through the same filter(...).update(...) calls.
    migration = importlib.import_module("portal.migrations.0002_audit_action_types")

    class Rows:
        def __init__(self, rows):
            self.rows = rows

        def filter(self, *, action, detail__event):
            return Rows([r for r in self.rows if r["action"] == action and r["detail"].get("event") == detail__event])

        def update(self, *, action):
            for row in self.rows:
                row["action"] = action

    class OldApps:
        def __init__(self, rows):
            self.model = type("AuditEvent", (), {"objects": Rows(rows)})

        def get_model(self, app_label, name):
            assert (app_label, name) == ("portal", "AuditEvent")
            return self.model

    cases = [
        ("other", {"event": "leave_cancelled", "reason": "r"}, "run_cancelled"),
        ("other", {"event": "join_started"}, "join_started"),
        ("other", {"event": "approval_moved_to_new_manager"}, "approval_moved"),
        ("other", {"event": "hardware_return_shipped"}, "return_shipped"),
        ("grant", {"event": "level_changed", "via": "ldap"}, "level_changed"),
        ("asset_status", {"event": "reserved"}, "asset_reserved"),
        ("approve", {"event": "change_confirmed"}, "change_confirmed"),
        ("grant", {"via": "ldap"}, "grant"),  # a real grant stays one
        ("grant", {"event": "reserved"}, "grant"),  # only the pairs that were written are mapped
        ("other", {"event": "unheard_of"}, "other"),  # nothing to map it to: left as it was
    ]
    rows = [{"action": action, "detail": dict(detail)} for action, detail, _ in cases]

    migration.type_old_events(OldApps(rows), None)

    assert [row["action"] for row in rows] == [expected for _, _, expected in cases]
    assert rows[0]["detail"] == {"event": "leave_cancelled", "reason": "r"}
    mapped = {action for _, _, action in migration.OLD_EVENTS}
    assert mapped <= set(AuditEvent.Action.values)


# --- Append-only ------------------------------------------------------------------------


def test_saving_an_existing_event_is_refused(event):
    event.action = AuditEvent.Action.STATUS_CHANGED

    with pytest.raises(PermissionDenied, match="Audit events are append-only."):
        event.save()

    assert AuditEvent.objects.get(pk=event.pk).action == AuditEvent.Action.TERMINATE


def test_overwriting_an_event_through_a_new_instance_is_refused(event):
    forged = AuditEvent(
        pk=event.pk, action=AuditEvent.Action.STATUS_CHANGED, target_type="x", target_id="1", target_repr="x"
    )

    with pytest.raises(PermissionDenied):
        forged.save()

    assert AuditEvent.objects.get(pk=event.pk).action == AuditEvent.Action.TERMINATE


def test_deleting_an_event_is_refused(event):
    with pytest.raises(PermissionDenied, match="Audit events are append-only."):
        event.delete()

    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_bulk_update_of_events_is_refused(event):
    try:
        with pytest.raises(PermissionDenied), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).update(action=AuditEvent.Action.STATUS_CHANGED)
    finally:
        assert AuditEvent.objects.get(pk=event.pk).action == AuditEvent.Action.TERMINATE


def test_bulk_delete_of_events_is_refused(event):
    try:
        with pytest.raises(PermissionDenied), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).delete()
    finally:
        assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_deleting_the_actor_keeps_the_event_and_the_actors_name(event, actor):
    # Deletion of a user clears the foreign key (SET NULL) through the base manager; that must keep
    # working once AuditEvent's default queryset refuses bulk updates.
    actor.delete()

    event = AuditEvent.objects.get(pk=event.pk)
    assert (event.actor, event.actor_repr) == (None, "ada-admin")


def test_audit_events_are_view_only_in_model_permissions():
    codenames = set(Permission.objects.filter(content_type__app_label="portal").values_list("codename", flat=True))
    assert codenames >= {"view_auditevent"}
    assert not codenames & {"add_auditevent", "change_auditevent", "delete_auditevent"}


# --- History attribution ----------------------------------------------------------------
# That simple-history writes the row with this user is proved on a real history table in
# config/tests/test_audit_trail.py; here, what the ground's helper leaves on the instance.


def test_set_history_user_marks_the_instance_for_its_next_history_row(actor):
    group = Group.objects.create(name="Marked")

    assert set_history_user(group, actor) is group
    assert group._history_user == actor


@pytest.mark.parametrize("acting_user", [None, AnonymousUser()], ids=["none", "anonymous"])
def test_set_history_user_without_a_user_marks_the_system(acting_user):
    group = Group.objects.create(name="Marked")
    assert set_history_user(group, acting_user)._history_user is None
