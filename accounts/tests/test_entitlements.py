"""Entitlements recorded by hand: `accounts.services.entitlements` (grant, revoke).

Every change is checked for its effect, its history row (naming the acting user) and its
audit event; every refusal for its message and for leaving nothing behind.
"""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import (
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
)
from accounts.services import entitlements
from accounts.services.entitlements import entitlement_grant, entitlement_revoke
from accounts.tests.factories import ApplicationFactory, EmployeeFactory, EntitlementFactory, UserFactory
from portal.models import AuditEvent
from portal.testing.assertions import refused


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada-admin")


@pytest.fixture
def alice(db):
    return EmployeeFactory(first_name="Alice", last_name="Able", employee_number="E100")


@pytest.fixture
def slack(db):
    return ApplicationFactory(name="Slack", access_levels=["user", "admin"])


def snapshot() -> dict[str, int]:
    """Row counts that a refused call must leave unchanged."""
    return {
        "employees": Employee.objects.count(),
        "employee_history": Employee.history.count(),
        "entitlements": Entitlement.objects.count(),
        "entitlement_history": Entitlement.history.count(),
        "audit": AuditEvent.objects.count(),
    }


@pytest.mark.django_db
def test_grant_creates_an_active_entitlement_with_history_and_audit(alice, slack, admin_user):
    before = timezone.now()

    entitlement = entitlement_grant(
        employee=alice, application=slack, level="admin", acting_user=admin_user, source=EntitlementSource.REQUEST
    )

    entitlement.refresh_from_db()
    assert (entitlement.employee, entitlement.application, entitlement.level) == (alice, slack, "admin")
    assert entitlement.status == EntitlementStatus.ACTIVE
    assert entitlement.source == EntitlementSource.REQUEST
    assert entitlement.granted_at >= before
    assert entitlement.revoked_at is None

    [history] = entitlement.history.all()
    assert (history.history_type, history.history_user) == ("+", admin_user)

    [event] = AuditEvent.objects.all()
    assert event.action == AuditEvent.Action.GRANT
    assert (event.actor, event.actor_repr) == (admin_user, "ada-admin")
    assert (event.target_type, event.target_id) == ("accounts.Entitlement", str(entitlement.pk))
    assert event.target_repr == "Alice Able · Slack (admin)"
    assert event.detail == {"employee": alice.pk, "application": slack.pk, "level": "admin", "source": "request"}


@pytest.mark.django_db
def test_grant_by_the_system_is_recorded_as_system(alice, slack):
    entitlement = entitlement_grant(employee=alice, application=slack, level="user", acting_user=None)

    assert entitlement.history.get().history_user is None
    event = AuditEvent.objects.get()
    assert (event.actor, event.actor_repr) == (None, "system")


@pytest.mark.django_db
def test_grant_twice_is_idempotent(alice, slack, admin_user):
    first = entitlement_grant(employee=alice, application=slack, level="user", acting_user=admin_user)
    after_first = snapshot()

    second = entitlement_grant(employee=alice, application=slack, level="user", acting_user=admin_user)

    assert second.pk == first.pk
    assert snapshot() == after_first
    assert AuditEvent.objects.filter(action=AuditEvent.Action.GRANT).count() == 1


@pytest.mark.django_db
def test_grant_returns_a_pending_entitlement_at_the_same_level_unchanged(alice, slack, admin_user):
    pending = EntitlementFactory(employee=alice, application=slack, status=EntitlementStatus.PENDING, granted_at=None)
    before = snapshot()

    result = entitlement_grant(employee=alice, application=slack, level="user", acting_user=admin_user)

    assert result.pk == pending.pk
    assert result.status == EntitlementStatus.PENDING
    assert snapshot() == before


@pytest.mark.django_db
def test_grant_at_another_level_is_refused(alice, slack, admin_user):
    entitlement_grant(employee=alice, application=slack, level="user", acting_user=admin_user)

    message = refused(entitlement_grant, employee=alice, application=slack, level="admin", acting_user=admin_user)

    assert message == ("Alice Able already holds Slack at level 'user'; change the level instead of granting again.")


@pytest.mark.django_db
def test_grant_while_the_entitlement_is_being_revoked_is_refused(alice, slack, admin_user):
    EntitlementFactory(employee=alice, application=slack, status=EntitlementStatus.REVOKING)

    message = refused(entitlement_grant, employee=alice, application=slack, level="user", acting_user=admin_user)

    assert message == (
        "Alice Able's access to Slack is being revoked; grant it again once the revocation has finished."
    )


@pytest.mark.django_db
def test_grant_to_a_terminated_employee_is_refused(slack, admin_user):
    leaver = EmployeeFactory(first_name="Lee", last_name="Leaver", status=EmployeeStatus.TERMINATED)

    message = refused(entitlement_grant, employee=leaver, application=slack, level="user", acting_user=admin_user)

    assert message == "Lee Leaver is terminated and cannot be granted access."


@pytest.mark.django_db
def test_grant_reads_the_employee_status_from_the_database_not_the_callers_copy(alice, slack, admin_user):
    Employee.objects.filter(pk=alice.pk).update(status=EmployeeStatus.TERMINATED)
    assert alice.status == EmployeeStatus.ACTIVE  # the caller's copy is stale

    message = refused(entitlement_grant, employee=alice, application=slack, level="user", acting_user=admin_user)

    assert message == "Alice Able is terminated and cannot be granted access."


@pytest.mark.django_db
def test_grant_at_an_unknown_level_is_refused(alice, slack, admin_user):
    message = refused(entitlement_grant, employee=alice, application=slack, level="owner", acting_user=admin_user)

    assert message == "Slack has no level 'owner'; choose one of user, admin."


@pytest.mark.django_db
def test_grant_expiring_in_the_past_is_refused(alice, slack, admin_user):
    yesterday = timezone.now() - datetime.timedelta(days=1)

    message = refused(
        entitlement_grant, employee=alice, application=slack, level="user", acting_user=admin_user, expires_at=yesterday
    )

    assert message == "Expiry must be after the grant time."


@pytest.mark.django_db
def test_grant_after_a_revoke_creates_a_new_entitlement(alice, slack, admin_user):
    first = entitlement_grant(employee=alice, application=slack, level="user", acting_user=admin_user)
    entitlement_revoke(entitlement=first, acting_user=admin_user)

    second = entitlement_grant(employee=alice, application=slack, level="admin", acting_user=admin_user)

    assert second.pk != first.pk
    assert list(Entitlement.objects.filter(employee=alice).values_list("status", flat=True).order_by("id")) == [
        EntitlementStatus.REVOKED,
        EntitlementStatus.ACTIVE,
    ]


@pytest.mark.django_db
def test_grant_writes_nothing_when_the_audit_log_fails(alice, slack, admin_user, monkeypatch):
    def broken_audit(**kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(entitlements, "audit_record", broken_audit)
    before = snapshot()

    with pytest.raises(RuntimeError):
        entitlement_grant(employee=alice, application=slack, level="user", acting_user=admin_user)

    assert snapshot() == before


def _insert_competing_grant_after_validation(monkeypatch, *, level):
    """Simulate the race: another writer inserts the live entitlement after our checks, before our insert."""
    real_full_clean = Entitlement.full_clean

    def full_clean_then_competitor_inserts(self, *args, **kwargs):
        real_full_clean(self, *args, **kwargs)
        if self.pk is None and not Entitlement.objects.filter(employee=self.employee, application=self.application):
            EntitlementFactory(employee=self.employee, application=self.application, level=level)

    monkeypatch.setattr(Entitlement, "full_clean", full_clean_then_competitor_inserts)


@pytest.mark.django_db
def test_grant_losing_an_insert_race_returns_the_winners_entitlement(alice, slack, admin_user, monkeypatch):
    _insert_competing_grant_after_validation(monkeypatch, level="user")

    result = entitlement_grant(employee=alice, application=slack, level="user", acting_user=admin_user)

    [winner] = Entitlement.objects.filter(employee=alice, application=slack)
    assert result.pk == winner.pk
    assert not AuditEvent.objects.exists()  # the winner audits its own grant; the loser adds nothing
    assert winner.history.count() == 1


@pytest.mark.django_db
def test_grant_losing_an_insert_race_at_another_level_is_refused(alice, slack, admin_user, monkeypatch):
    _insert_competing_grant_after_validation(monkeypatch, level="admin")

    with pytest.raises(ValidationError, match="already holds Slack at level 'admin'"):
        entitlement_grant(employee=alice, application=slack, level="user", acting_user=admin_user)

    # The simulated competitor ran inside the refused transaction, so both are gone; nothing of ours remains.
    assert not Entitlement.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_revoke_marks_the_entitlement_revoked_with_history_and_audit(alice, slack, admin_user):
    entitlement = EntitlementFactory(employee=alice, application=slack)

    result = entitlement_revoke(entitlement=entitlement, acting_user=admin_user, reason="Left the project")

    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKED
    assert entitlement.revoked_at is not None
    assert result.revoked_at == entitlement.revoked_at
    latest = entitlement.history.first()
    assert (latest.history_type, latest.status, latest.history_user) == ("~", EntitlementStatus.REVOKED, admin_user)
    event = AuditEvent.objects.get()
    assert (event.action, event.actor) == (AuditEvent.Action.REVOKE, admin_user)
    assert event.detail == {"employee": alice.pk, "application": slack.pk, "reason": "Left the project"}


@pytest.mark.django_db
def test_revoke_twice_records_one_revocation(alice, slack, admin_user):
    entitlement = EntitlementFactory(employee=alice, application=slack)
    first = entitlement_revoke(entitlement=entitlement, acting_user=admin_user)
    after_first = snapshot()

    # The caller still holds the stale, active copy: the service must look at the database.
    assert entitlement.status == EntitlementStatus.ACTIVE
    second = entitlement_revoke(entitlement=entitlement, acting_user=admin_user)

    assert second.revoked_at == first.revoked_at
    assert snapshot() == after_first
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVOKE).count() == 1


@pytest.mark.django_db
def test_revoke_frees_the_application_for_a_new_grant(alice, slack, admin_user):
    entitlement = EntitlementFactory(employee=alice, application=slack, status=EntitlementStatus.PENDING)
    entitlement_revoke(entitlement=entitlement, acting_user=admin_user)

    EntitlementFactory(employee=alice, application=slack)  # the live-uniqueness constraint no longer applies

    assert Entitlement.objects.filter(employee=alice, application=slack).count() == 2


# The race between two real transactions granting the same application is in
# assets/tests/test_races.py, beside the check-out race (one PostgreSQL-only module).
