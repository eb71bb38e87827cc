"""Provisioning services with real targets: an OpenLDAP slapd and a webhook receiver on 127.0.0.1.

State transitions, audit events, history naming the acting user, and idempotent repeats that
make no second call to the target.
"""

import pytest
from django.core.exceptions import ValidationError

from accounts.connectors import AccountState, Connector, ConnectorError, ManualActionRequired, connector_registry
from accounts.models import ConnectorType, EntitlementStatus
from accounts.services.provisioning import (
    entitlement_change_level,
    entitlement_confirm_level_changed,
    entitlement_confirm_provisioned,
    entitlement_confirm_revoked,
    entitlement_deprovision,
    entitlement_plan,
    entitlement_provision,
)
from accounts.tests.factories import ApplicationFactory, EmployeeFactory
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada():
    return EmployeeFactory(
        employee_number="E100001", first_name="Ada", last_name="Lovelace", work_email="ada.lovelace@example.com"
    )


ADA_DN = "uid=ada.lovelace,ou=people,dc=example,dc=com"


@pytest.fixture
def ldap_app(ldap_directory):
    return ApplicationFactory(
        name="Grafana", connector=ConnectorType.LDAP, connector_config=ldap_directory.connector_config()
    )


@pytest.fixture
def hook_app(webhook_server):
    return ApplicationFactory(
        name="Ops Console",
        connector=ConnectorType.WEBHOOK,
        connector_config=webhook_server.connector_config(),
        access_levels=["viewer", "operator", "admin"],
    )


@pytest.fixture
def manual_app():
    return ApplicationFactory(name="Payroll", connector=ConnectorType.MANUAL)


def audit_actions(entitlement) -> list[tuple[str, dict]]:
    events = AuditEvent.objects.filter(target_type="accounts.Entitlement", target_id=str(entitlement.pk))
    return [(event.action, event.detail) for event in events.order_by("id")]


def history_users(entitlement) -> set:
    return {row.history_user for row in entitlement.history.all()}


# --- LDAP ---------------------------------------------------------------------------------------------


def test_ldap_provision_then_deprovision(ldap_directory, ldap_app, ada, it_admin):
    groups = ldap_app.connector_config["groups"]
    entitlement = entitlement_plan(employee=ada, application=ldap_app, level="user", acting_user=it_admin)
    assert entitlement.status == EntitlementStatus.PENDING

    entitlement = entitlement_provision(entitlement=entitlement, idempotency_key="task-1", acting_user=it_admin)

    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.ACTIVE
    assert entitlement.external_id == ADA_DN
    assert entitlement.granted_at is not None
    assert ldap_directory.members(groups["user"]) == {ADA_DN}

    entitlement = entitlement_deprovision(
        entitlement=entitlement, idempotency_key="task-2", acting_user=it_admin, reason="leaver"
    )

    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKED
    assert entitlement.revoked_at is not None
    assert ldap_directory.members(groups["user"]) == set()
    assert audit_actions(entitlement) == [
        (
            "grant",
            {"employee": ada.pk, "application": ldap_app.pk, "level": "user", "source": "birthright", "via": "ldap"},
        ),
        ("revoke", {"employee": ada.pk, "application": ldap_app.pk, "reason": "leaver", "via": "ldap"}),
    ]
    assert history_users(entitlement) == {it_admin}
    assert [row.status for row in entitlement.history.order_by("history_id")] == [
        "pending",
        "active",
        "revoking",
        "revoked",
    ]


def test_ldap_repeats_change_nothing(ldap_directory, ldap_app, ada, it_admin):
    entitlement = entitlement_plan(employee=ada, application=ldap_app, level="user")
    for _ in range(2):
        entitlement_provision(entitlement=entitlement, idempotency_key="task-1", acting_user=it_admin)
    for _ in range(2):
        entitlement_change_level(entitlement=entitlement, level="admin", idempotency_key="task-2", acting_user=it_admin)
    for _ in range(2):
        entitlement_deprovision(entitlement=entitlement, idempotency_key="task-3", acting_user=it_admin)

    assert [action for action, _ in audit_actions(entitlement)] == ["grant", "level_changed", "revoke"]
    assert ldap_directory.people() == [ADA_DN]
    assert ldap_directory.members(ldap_app.connector_config["groups"]["admin"]) == set()


def test_ldap_change_level_moves_the_group(ldap_directory, ldap_app, ada, it_admin):
    groups = ldap_app.connector_config["groups"]
    entitlement = entitlement_plan(employee=ada, application=ldap_app, level="user")
    entitlement_provision(entitlement=entitlement, idempotency_key="task-1")

    entitlement = entitlement_change_level(
        entitlement=entitlement, level="admin", idempotency_key="task-2", acting_user=it_admin
    )

    entitlement.refresh_from_db()
    assert entitlement.level == "admin"
    assert ldap_directory.members(groups["user"]) == set()
    assert ldap_directory.members(groups["admin"]) == {ADA_DN}
    assert audit_actions(entitlement)[-1] == (
        AuditEvent.Action.LEVEL_CHANGED,
        {"from": "user", "to": "admin", "via": "ldap"},
    )
    assert entitlement.history.first().history_user == it_admin


def test_ldap_failure_leaves_the_entitlement_pending_with_the_servers_message(ldap_directory, ldap_app, ada):
    ldap_app.connector_config = {**ldap_app.connector_config, "bind_password": "wrong"}
    ldap_app.save()
    entitlement = entitlement_plan(employee=ada, application=ldap_app, level="user")

    with pytest.raises(ConnectorError, match="invalidCredentials"):
        entitlement_provision(entitlement=entitlement, idempotency_key="task-1")

    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.PENDING
    assert audit_actions(entitlement) == []


# --- webhook --------------------------------------------------------------------------------------------


def test_webhook_lifecycle_makes_one_call_per_change(webhook_server, hook_app, ada, it_admin):
    entitlement = entitlement_plan(employee=ada, application=hook_app, level="viewer", acting_user=it_admin)

    entitlement_provision(entitlement=entitlement, idempotency_key="task-1", acting_user=it_admin)
    entitlement_provision(entitlement=entitlement, idempotency_key="task-1", acting_user=it_admin)
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.ACTIVE
    assert entitlement.external_id == "ext-E100001"
    assert len(webhook_server.calls) == 1  # the second provisioning found it active: no call

    entitlement_change_level(entitlement=entitlement, level="operator", idempotency_key="task-2", acting_user=it_admin)
    entitlement_change_level(entitlement=entitlement, level="operator", idempotency_key="task-2", acting_user=it_admin)
    assert len(webhook_server.calls) == 2

    entitlement_deprovision(entitlement=entitlement, idempotency_key="task-3", acting_user=it_admin)
    entitlement_deprovision(entitlement=entitlement, idempotency_key="task-3", acting_user=it_admin)
    assert len(webhook_server.calls) == 3

    assert [effect["event"] for effect in webhook_server.effects] == ["provision", "change_level", "revoke"]
    assert webhook_server.effects[2]["external_id"] == "ext-E100001"
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKED
    assert [action for action, _ in audit_actions(entitlement)] == ["grant", "level_changed", "revoke"]
    assert history_users(entitlement) == {it_admin}


def test_webhook_outage_then_retry_has_one_effect(webhook_server, hook_app, ada):
    entitlement = entitlement_plan(employee=ada, application=hook_app, level="viewer")
    webhook_server.fail_next(2, status=502, body="Bad Gateway")

    for _ in range(2):
        with pytest.raises(ConnectorError, match="answered HTTP 502: Bad Gateway"):
            entitlement_provision(entitlement=entitlement, idempotency_key="task-1")
        entitlement.refresh_from_db()
        assert entitlement.status == EntitlementStatus.PENDING
    entitlement_provision(entitlement=entitlement, idempotency_key="task-1")

    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.ACTIVE
    assert len(webhook_server.calls) == 3
    assert len(webhook_server.effects) == 1


def test_webhook_revoke_failure_stays_revoking_until_a_retry(webhook_server, hook_app, ada):
    entitlement = entitlement_plan(employee=ada, application=hook_app, level="viewer")
    entitlement_provision(entitlement=entitlement, idempotency_key="task-1")
    webhook_server.fail_always(503, '{"error": "maintenance"}')

    with pytest.raises(ConnectorError, match="HTTP 503: maintenance"):
        entitlement_deprovision(entitlement=entitlement, idempotency_key="task-2")
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKING

    webhook_server.behave()
    entitlement_deprovision(entitlement=entitlement, idempotency_key="task-2")
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKED
    assert [effect["event"] for effect in webhook_server.effects] == ["provision", "revoke"]


def test_a_pending_automated_entitlement_is_still_revoked_at_the_target(webhook_server, hook_app, ada):
    """The provisioning call may have reached the target before its worker died."""
    entitlement = entitlement_plan(employee=ada, application=hook_app, level="viewer")

    entitlement_deprovision(entitlement=entitlement, idempotency_key="task-2")

    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKED
    assert [call.event for call in webhook_server.calls] == ["revoke"]
    with pytest.raises(ValidationError, match="only pending access can be provisioned"):
        entitlement_provision(entitlement=entitlement, idempotency_key="task-1")
    assert len(webhook_server.calls) == 1


# --- manual -------------------------------------------------------------------------------------------------


def test_manual_provision_asks_a_person_and_confirm_completes_it(manual_app, ada, it_admin):
    entitlement = entitlement_plan(employee=ada, application=manual_app, level="user")

    with pytest.raises(ManualActionRequired, match="Create an account for Ada Lovelace .* in Payroll"):
        entitlement_provision(entitlement=entitlement, idempotency_key="task-1")
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.PENDING

    entitlement_confirm_provisioned(entitlement=entitlement, acting_user=it_admin, external_id="PAY-1")
    entitlement_confirm_provisioned(entitlement=entitlement, acting_user=it_admin, external_id="PAY-1")
    entitlement.refresh_from_db()
    assert (entitlement.status, entitlement.external_id) == (EntitlementStatus.ACTIVE, "PAY-1")

    with pytest.raises(ManualActionRequired, match="Change the access of"):
        entitlement_change_level(entitlement=entitlement, level="admin", idempotency_key="task-2")
    entitlement_confirm_level_changed(entitlement=entitlement, level="admin", acting_user=it_admin)
    entitlement.refresh_from_db()
    assert entitlement.level == "admin"

    with pytest.raises(ManualActionRequired, match="Remove the account of"):
        entitlement_deprovision(entitlement=entitlement, idempotency_key="task-3", acting_user=it_admin)
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKING

    entitlement_confirm_revoked(entitlement=entitlement, acting_user=it_admin, reason="done by hand")
    entitlement_confirm_revoked(entitlement=entitlement, acting_user=it_admin, reason="done by hand")
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKED
    assert [(action, detail.get("via")) for action, detail in audit_actions(entitlement)] == [
        ("grant", "manual"),
        ("level_changed", "manual"),
        ("revoke", "manual"),
    ]
    assert entitlement.history.first().history_user == it_admin


def test_a_pending_manual_entitlement_is_revoked_without_asking(manual_app, ada):
    entitlement = entitlement_plan(employee=ada, application=manual_app, level="user")
    entitlement_deprovision(entitlement=entitlement, idempotency_key="task-1")
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKED
    assert audit_actions(entitlement)[0][1]["reason"] == "never provisioned"


def test_confirming_revoked_access_as_provisioned_is_refused(manual_app, ada, it_admin):
    entitlement = entitlement_plan(employee=ada, application=manual_app, level="user")
    entitlement_confirm_revoked(entitlement=entitlement, acting_user=it_admin)
    with pytest.raises(ValidationError, match="only pending access can be confirmed"):
        entitlement_confirm_provisioned(entitlement=entitlement, acting_user=it_admin)


# --- a revocation that overtakes a provisioning in flight -------------------------------------------------------


class OvertakenConnector(Connector):
    """Records calls; while provisioning, another worker revokes the entitlement (simulated).

    Kept beside `accounts.tests.fakes.RecordingConnector` because the race needs a side effect in
    the middle of the provision call (the status moved to revoking), which the recording fake,
    that only succeeds or raises, cannot make.
    """

    kind = "test-overtaken"
    calls: list[str] = []

    def provision(self, *, employee, level, idempotency_key):
        from accounts.models import Entitlement

        Entitlement.objects.filter(application=self.application).update(status=EntitlementStatus.REVOKING)
        self.calls.append("provision")
        return AccountState(exists=True, active=True, level=level, external_id="acct-1")

    def revoke(self, *, employee, external_id, idempotency_key):
        self.calls.append(f"revoke {external_id}")
        return AccountState(exists=False)


@pytest.fixture
def overtaken_app():
    connector_registry[OvertakenConnector.kind] = OvertakenConnector
    OvertakenConnector.calls = []
    yield ApplicationFactory(name="Racy", connector=OvertakenConnector.kind)
    del connector_registry[OvertakenConnector.kind]


def test_a_provisioning_overtaken_by_a_revocation_undoes_itself(overtaken_app, ada):
    entitlement = entitlement_plan(employee=ada, application=overtaken_app, level="user")

    entitlement = entitlement_provision(entitlement=entitlement, idempotency_key="task-1")

    assert entitlement.status == EntitlementStatus.REVOKING
    assert OvertakenConnector.calls == ["provision", "revoke acct-1"]
    assert audit_actions(entitlement) == []  # never granted
