"""What the reliability tests share: test actions (imported by the worker too, `--preload`), the
leaver builder, and the assertions that each effect happened once, counted on the peers' side.

The peers count for themselves (`portal.testing.webhook_server`, `portal.testing.ldap_server`):
the webhook peer every call, every applied effect and every re-sent call its idempotency key
absorbed; the LDAP peer every operation through its front door and, from slapd's audit log,
every change slapd applied. Nothing here counts in Portal.
"""

import time

from django.utils import timezone

from accounts.models import Entitlement, EntitlementStatus
from accounts.services import provisioning
from accounts.tests.factories import ApplicationFactory, EmployeeFactory, EntitlementFactory
from assets.selectors import licenses_with_usage
from assets.tests.factories import LicenseFactory
from offboarding import engine
from offboarding.actions import register, registry
from offboarding.models import (
    Assignee,
    ChecklistKind,
    ChecklistRun,
    ChecklistTemplate,
    RunStatus,
    Task,
    TaskStatus,
    TaskTemplate,
)
from portal.models import AuditEvent
from portal.testing.worker import Deadlines

DEADLINES = Deadlines(running=6, queued=8, backoff=0.2, timeout=4, retry=5)
EXECUTE_TASK = "offboarding.tasks.task_execute"
PRELOAD = __name__


# --- Test actions (registered here and, through --preload, in the worker) -------------------------


def _revoke_access(task) -> dict:
    """Fan out: one revoke task per live entitlement of the leaver (idempotent on the task key)."""
    ids = list(
        Entitlement.objects.filter(
            employee=task.run.employee, status__in=[EntitlementStatus.ACTIVE, EntitlementStatus.REVOKING]
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for pk in ids:
        engine.task_add(
            run=task.run, key=f"revoke:{pk}", title=f"Revoke entitlement {pk}", action="rel_revoke",
            params={"entitlement": pk}, parent=task,
        )  # fmt: skip
    return {"entitlements": ids}


def _revoke(task) -> dict:
    """Revoke one entitlement through its connector, with the task id as idempotency key."""
    entitlement = Entitlement.objects.get(pk=task.params["entitlement"])
    provisioning.entitlement_deprovision(entitlement=entitlement, idempotency_key=str(task.pk), reason="leaver")
    engine.run_record_revocation(run=task.run)
    return {"entitlement": entitlement.pk}


for _name, _label, _func in (
    ("rel_revoke_access", "Revoke every entitlement (reliability tests)", _revoke_access),
    ("rel_revoke", "Revoke one entitlement (reliability tests)", _revoke),
):
    if _name not in registry:
        register(_name, _label)(_func)


# --- Building a leaver -------------------------------------------------------------------------------


def leaver_template() -> ChecklistTemplate:
    template, _ = ChecklistTemplate.objects.get_or_create(name="Reliability leaver", kind=ChecklistKind.LEAVE)
    TaskTemplate.objects.get_or_create(
        checklist=template,
        key="revoke-access",
        defaults={"title": "Revoke access", "assignee": Assignee.SYSTEM, "action": "rel_revoke_access"},
    )
    return template


def make_leaver(*, hook=None, ldap=None, webhook_apps: int = 0, ldap_apps: int = 0, apps=None, **config_extra):
    """An employee holding active access on `webhook_apps` webhook and `ldap_apps` LDAP applications.

    LDAP and webhook applications alternate (L, W, L, W, ...: whichever kind a worker picks up
    first, both are in flight early). `apps` reuses applications (a layoff: many leavers, the same
    applications). The access is provisioned for real, through the connectors in this process;
    each application has a license, and each entitlement holds one seat afterwards (checked).
    """
    employee = EmployeeFactory()
    if apps is None:
        apps = make_apps(hook=hook, ldap=ldap, webhook_apps=webhook_apps, ldap_apps=ldap_apps, **config_extra)
    entitlements = []
    for app in apps:
        entitlement = EntitlementFactory(employee=employee, application=app, status=EntitlementStatus.PENDING)
        provisioning.entitlement_provision(entitlement=entitlement, idempotency_key=f"setup-{entitlement.pk}")
        entitlements.append(entitlement)
    assert Entitlement.objects.filter(employee=employee, status=EntitlementStatus.ACTIVE).count() == len(apps)
    return employee, entitlements


def make_apps(*, hook=None, ldap=None, webhook_apps: int = 0, ldap_apps: int = 0, **config_extra) -> list:
    """Applications with a 100-seat license each, on the peers, LDAP and webhook alternating."""
    kinds = []
    for i in range(max(webhook_apps, ldap_apps)):
        kinds += (["ldap"] if i < ldap_apps else []) + (["webhook"] if i < webhook_apps else [])
    apps = []
    for i, kind in enumerate(kinds):
        if kind == "ldap":
            config = ldap.connector_config(groups={"user": f"rel-{i}-users"}, **config_extra)
        else:
            config = hook.connector_config(**config_extra)
        app = ApplicationFactory(
            name=f"Rel {i:02d} {kind}", connector=kind, connector_config=config, access_levels=["user"]
        )
        LicenseFactory(application=app, seats_purchased=100)
        apps.append(app)
    return apps


def open_run(employee) -> ChecklistRun:
    """A move run held open by a manual step, to add automated tasks to by hand."""
    template, _ = ChecklistTemplate.objects.get_or_create(name="Reliability hold", kind=ChecklistKind.MOVE)
    TaskTemplate.objects.get_or_create(
        checklist=template, key="hold", defaults={"title": "Hold", "assignee": Assignee.IT}
    )
    return engine.run_start(
        employee=employee, kind=ChecklistKind.MOVE, event_date=timezone.localdate(), acting_user=None
    )


def start_leave(employee) -> ChecklistRun:
    return engine.run_start(
        employee=employee,
        kind=ChecklistKind.LEAVE,
        event_date=timezone.localdate(),
        acting_user=None,
        effective_at=timezone.now(),
    )


def task_done(task) -> bool:
    return Task.objects.filter(pk=task.pk, status=TaskStatus.DONE).exists()


def run_done(run) -> bool:
    return ChecklistRun.objects.filter(pk=run.pk, status=RunStatus.DONE).exists()


def quiet(run) -> bool:
    """Nothing of the run is queued or running, and nothing automated is due and ready to run."""
    if Task.objects.filter(run=run, status__in=[TaskStatus.QUEUED, TaskStatus.RUNNING]).exists():
        return False
    return not engine.runnable_tasks(run=run).filter(assignee_type=Assignee.SYSTEM).exists()


def revocations_finished(run, entitlements) -> bool:
    """The run is quiet and each entitlement's revoke task is done (later steps wait for their day)."""
    revoking = Task.objects.filter(run=run, action="revoke_entitlement")
    return quiet(run) and revoking.count() == len(entitlements) and not revoking.exclude(status=TaskStatus.DONE)


def seats(entitlements) -> dict[int, int]:
    """Seats used per application of `entitlements`, from the license selector."""
    apps = {e.application_id for e in entitlements}
    return dict(licenses_with_usage().filter(application__in=apps).values_list("application", "seats_used"))


def revoke_events(entitlements) -> int:
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.REVOKE,
        target_type="accounts.Entitlement",
        target_id__in=[str(e.pk) for e in entitlements],
    ).count()


def group_of(entitlement) -> str:
    return entitlement.application.connector_config["groups"]["user"]


class PeerMark:
    """Where the peers' records stood at a moment (after set-up), so a test reads only what followed."""

    def __init__(self, *, hook=None, ldap=None):
        self.hook, self.ldap = hook, ldap
        self._hook_calls = len(hook.calls) if hook is not None else 0
        self._ldap_calls = len(ldap.calls) if ldap is not None else 0
        self._ldap_effects = len(ldap.effects()) if ldap is not None else 0
        self.at = time.time()

    def webhook_calls(self, *, key: str | None = None, event: str | None = None) -> list:
        calls = self.hook.calls[self._hook_calls :]
        return [c for c in calls if (key is None or c.idempotency_key == key) and (event is None or c.event == event)]

    def ldap_calls(self, *, op: str | None = None, dn: str | None = None) -> list:
        calls = self.ldap.calls[self._ldap_calls :]
        return [c for c in calls if (op is None or c.op == op) and (dn is None or _same_dn(c.dn, dn))]

    def ldap_effects(self, *, dn: str | None = None) -> list:
        effects = self.ldap.effects()[self._ldap_effects :]
        return [e for e in effects if dn is None or _same_dn(e.dn, dn)]


def _same_dn(a: str, b: str) -> bool:
    return a.replace(" ", "").lower() == b.replace(" ", "").lower()


def assert_each_effect_once(*, mark: PeerMark, entitlements, run=None) -> dict:
    """Every entitlement revoked exactly once, counted by the peers, and recorded once here.

    Webhook: exactly one applied revoke effect per (application, employee), whatever the keys
    (a retry that sent a new key would be applied twice and fail here). LDAP: the member is gone
    from the group and slapd applied exactly one change to that group. Portal: every entitlement
    revoked, one REVOKE audit event each, every seat returned (one per application, not just
    "no seat in use": an empty answer fails). Returns the peers' counts, for the test to print.
    """
    ids = [e.pk for e in entitlements]
    entitlements = list(Entitlement.objects.filter(pk__in=ids).select_related("employee", "application"))
    assert len(entitlements) == len(ids) and ids, "the entitlements to check exist"
    assert {e.status for e in entitlements} == {EntitlementStatus.REVOKED}
    counts = {"webhook_revoke_calls": 0, "webhook_absorbed": 0, "ldap_group_writes": 0, "ldap_group_effects": 0}
    groups = set()
    for e in entitlements:
        number = e.employee.employee_number
        if e.application.connector == "webhook":
            applied = mark.hook.effects_for(event="revoke", application=e.application.name, employee_number=number)
            assert len(applied) == 1, f"{e}: {len(applied)} revoke effects at the webhook peer, not 1"
            assert mark.hook.app_accounts[(e.application.name, number)]["active"] is False
            keys = {effect["idempotency_key"] for effect in applied}
            calls = [c for c in mark.webhook_calls(event="revoke") if c.idempotency_key in keys]
            counts["webhook_revoke_calls"] += len(calls)
            counts["webhook_absorbed"] += sum(c.absorbed for c in calls)
            assert len(calls) == 1 + sum(c.absorbed for c in calls), (
                f"{e}: a re-sent call was neither applied nor absorbed"
            )
        else:
            group = group_of(e)
            person = e.external_id
            assert person and person.lower() not in {m.lower() for m in mark.ldap.members(group)}, (
                f"{e} still in {group}"
            )
            effects = [
                x for x in mark.ldap_effects(dn=group) if any(person.lower() in line.lower() for line in x.lines)
            ]
            assert len(effects) == 1, f"{e}: slapd applied {len(effects)} changes to {group}, not 1"
            counts["ldap_group_effects"] += len(effects)
            groups.add(group.lower())
    # Group changes sent (applied or refused) to the groups of these entitlements: one per effect when
    # nothing was re-sent; an absorbed re-send reads and sends none.
    if groups:
        counts["ldap_group_writes"] = len([c for c in mark.ldap_calls() if c.is_write and c.dn.lower() in groups])
    assert seats(entitlements) == {e.application_id: 0 for e in entitlements}, "every seat is returned"
    assert revoke_events(entitlements) == len(entitlements), "one REVOKE audit event per entitlement"
    if run is not None:
        now = timezone.now()
        unfinished = Task.objects.filter(run=run).exclude(status=TaskStatus.DONE)
        assert not unfinished.filter(due_at__lte=now).exclude(depends_on__due_at__gt=now).exists(), (
            "only later steps wait"
        )
    return counts


# --- SCIM targets (one tenant of the scim2-server peer per application) -------------------------------

SCIM_GROUP = "Everyone"


def make_scim_apps(scim, count: int, **config_extra) -> list:
    """`count` SCIM applications, each its own target system (a tenant of `scim`) with a group for
    its one level, and a 100-seat license."""
    apps = []
    for i in range(count):
        tenant = f"rel-{i:02d}"
        scim.add_group(SCIM_GROUP, tenant=tenant)
        config = scim.connector_config(tenant, groups={"user": SCIM_GROUP}, **config_extra)
        app = ApplicationFactory(
            name=f"Rel {i:02d} scim", connector="scim", connector_config=config, access_levels=["user"]
        )
        LicenseFactory(application=app, seats_purchased=100)
        apps.append(app)
    return apps


def scim_tenant(application) -> str:
    """The tenant of the SCIM peer an application's config points at."""
    return application.connector_config["url"].rstrip("/").split("/")[-2]


class ScimMark:
    """Where the SCIM peer's record stood at a moment (after set-up), so a test reads only what followed."""

    def __init__(self, scim):
        self.scim = scim
        self._calls = len(scim.calls)
        self.at = time.time()

    def calls(self, *, tenant: str | None = None, writes: bool | None = None) -> list:
        calls = self.scim.calls[self._calls :]
        return [c for c in calls if (tenant is None or c.tenant == tenant) and (writes is None or c.is_write == writes)]

    def effects(self, *, tenant: str | None = None) -> list:
        return [c for c in self.calls(tenant=tenant) if c.applied]


def assert_scim_effects_once(*, mark: ScimMark, entitlements) -> dict:
    """Every SCIM entitlement revoked exactly once, counted by the peer, and recorded once here.

    At the peer, per application (tenant): the user is inactive and out of the group, and exactly
    two writes were applied after `mark`: the membership removed, then `active: false`. A re-sent
    call that the connector's read-first absorbed sends no write, so it shows only as reads.
    Portal: revoked, one REVOKE audit event each, every seat returned. Returns the counts.
    """
    ids = [e.pk for e in entitlements]
    entitlements = list(Entitlement.objects.filter(pk__in=ids).select_related("employee", "application"))
    assert len(entitlements) == len(ids) and ids, "the entitlements to check exist"
    assert {e.status for e in entitlements} == {EntitlementStatus.REVOKED}
    counts = {"scim_writes": 0, "scim_effects": 0, "scim_reads": 0, "scim_refused": 0}
    for e in entitlements:
        tenant = scim_tenant(e.application)
        user = mark.scim.user(e.employee.work_email, tenant=tenant)
        assert user is not None and user["id"] == e.external_id, f"{e}: the user Portal recorded is at the peer"
        assert user["active"] is False, f"{e}: still active at the peer"
        assert e.external_id not in mark.scim.members(SCIM_GROUP, tenant=tenant), f"{e}: still in {SCIM_GROUP}"
        effects = mark.effects(tenant=tenant)
        kinds = [(c.method, c.resource) for c in effects]
        assert kinds == [("PATCH", "Groups"), ("PATCH", "Users")], f"{e}: the peer applied {effects}, not 2 writes"
        calls = mark.calls(tenant=tenant)
        counts["scim_writes"] += sum(c.is_write for c in calls)
        counts["scim_effects"] += len(effects)
        counts["scim_reads"] += sum(c.method == "GET" for c in calls)
        counts["scim_refused"] += sum(c.status >= 400 for c in calls)
    assert seats(entitlements) == {e.application_id: 0 for e in entitlements}, "every seat is returned"
    assert revoke_events(entitlements) == len(entitlements), "one REVOKE audit event per entitlement"
    return counts
