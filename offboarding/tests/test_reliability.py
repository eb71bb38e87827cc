"""Proof of reliability of the lifecycle engine, with real worker processes and real target systems.

Each test runs on the stack the suite runs on: SQLite with the ORM broker (`make test`, with
SQLITE_TEST_PATH naming a file, as a worker process cannot open an in-memory database) or
PostgreSQL with the Redis broker (`make test-pg`). CI runs both, so each proof runs on both.

What is proved:
- a task delivered twice is claimed once: one call to the target (`test_double_delivery_...`);
- a worker paused past the deadline is taken over; both deliveries reach the target, which
  applies the idempotency key once; the late one is superseded (`test_paused_worker_...`);
- every action of a finished leaver run, delivered again, changes nothing: no second webhook
  effect, the same LDAP entries and memberships, the same seat count and audit log (`test_replay_...`);
- a worker SIGKILLed mid-run: after a restart the run completes and every effect happened
  exactly once (`test_worker_killed_mid_leaver_run_...`);
- a connector failing three times then succeeding ends done with one effect; one that always
  fails ends `failed`, with the target's error, and nothing claims to be done that is not;
- two concurrent terminations of the same person make one run.

The worker imports this module (`--preload`) so that the test actions below exist there too.
The sweeper runs from the test process at a test's pace (django-q's scheduler looks for due
schedules every 30 s); it is the same `offboarding.engine.sweep` the schedule runs.
"""

import os
import signal
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection
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
from portal.testing.concurrency import kinds, run_at_once
from portal.testing.worker import Deadlines, QCluster, enqueue_to, shareable_database_reason, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DEADLINES = Deadlines(running=6, queued=8, backoff=0.2, timeout=4, retry=5)
EXECUTE_TASK = "offboarding.tasks.task_execute"


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


# --- Fixtures ------------------------------------------------------------------------------------


def _stack() -> str:
    broker = "redis" if django_settings.REDIS_URL else "orm"
    return f"{connection.vendor}+{broker}"


@pytest.fixture
def file_db():
    """A database other processes and threads can share: a file or a server, not in-memory SQLite
    (whose shared cache answers "table is locked" instead of waiting). Skipped otherwise, except in CI."""
    reason = shareable_database_reason(connection.settings_dict)
    if reason:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI must run this test: {reason}")
        pytest.skip(reason)


@pytest.fixture
def cluster(file_db, settings, tmp_path, worker_settings_module):
    """A real qcluster on this test database and broker; this process enqueues to it."""
    settings.LIFECYCLE = DEADLINES.lifecycle(settings.LIFECYCLE)
    worker = QCluster(
        name=f"portal_rel_{os.getpid()}",
        database=connection.settings_dict,
        settings_module=worker_settings_module,
        redis_url=settings.REDIS_URL,
        workers=2,
        deadlines=DEADLINES,
        preload=[__name__],
        log_path=tmp_path / "qcluster.log",
    )
    try:
        with worker, enqueue_to(worker):
            yield worker
    finally:
        print(f"--- qcluster log ({_stack()}) ---\n{worker.log_tail(60)}")


@pytest.fixture
def hook(webhook_server):
    return webhook_server


@pytest.fixture
def ldap(ldap_directory):
    return ldap_directory


def _leaver_template() -> ChecklistTemplate:
    template, _ = ChecklistTemplate.objects.get_or_create(name="Reliability leaver", kind=ChecklistKind.LEAVE)
    TaskTemplate.objects.get_or_create(
        checklist=template,
        key="revoke-access",
        defaults={"title": "Revoke access", "assignee": Assignee.SYSTEM, "action": "rel_revoke_access"},
    )
    return template


def _leaver(*, hook=None, ldap=None, webhook_apps: int = 0, ldap_apps: int = 0):
    """An employee holding active access on `webhook_apps` webhook and `ldap_apps` LDAP applications.

    The access is provisioned for real (through the connectors, in this process), each application
    has a license, and the target systems' counters are read afterwards as the baseline.
    """
    employee = EmployeeFactory()
    entitlements = []
    apps = [("webhook", hook.connector_config()) for _ in range(webhook_apps)]
    apps += [("ldap", ldap.connector_config(groups={"user": f"rel-{i}-users"})) for i in range(ldap_apps)]
    for kind, config in apps:
        app = ApplicationFactory(connector=kind, connector_config=config, access_levels=["user"])
        LicenseFactory(application=app, seats_purchased=10)
        entitlement = EntitlementFactory(employee=employee, application=app, status=EntitlementStatus.PENDING)
        provisioning.entitlement_provision(entitlement=entitlement, idempotency_key=f"setup-{entitlement.pk}")
        entitlements.append(entitlement)
    assert Entitlement.objects.filter(employee=employee, status=EntitlementStatus.ACTIVE).count() == len(apps)
    return employee, entitlements


def _open_run(employee) -> ChecklistRun:
    """A move run held open by a manual step, to add automated tasks to by hand."""
    template, _ = ChecklistTemplate.objects.get_or_create(name="Reliability hold", kind=ChecklistKind.MOVE)
    TaskTemplate.objects.get_or_create(
        checklist=template, key="hold", defaults={"title": "Hold", "assignee": Assignee.IT}
    )
    return engine.run_start(
        employee=employee, kind=ChecklistKind.MOVE, event_date=timezone.localdate(), acting_user=None
    )


def _task_done(task) -> bool:
    return Task.objects.filter(pk=task.pk, status=TaskStatus.DONE).exists()


def _start_leave(employee) -> ChecklistRun:
    return engine.run_start(
        employee=employee,
        kind=ChecklistKind.LEAVE,
        event_date=timezone.localdate(),
        acting_user=None,
        effective_at=timezone.now(),
    )


def _seats(entitlements) -> dict[int, int]:
    apps = [e.application_id for e in entitlements]
    return dict(licenses_with_usage().filter(application__in=apps).values_list("application", "seats_used"))


def _revoke_events(entitlements) -> int:
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.REVOKE,
        target_type="accounts.Entitlement",
        target_id__in=[str(e.pk) for e in entitlements],
    ).count()


def _run_done(run) -> bool:
    return ChecklistRun.objects.filter(pk=run.pk, status=RunStatus.DONE).exists()


def _quiet(run) -> bool:
    """Nothing of the run is queued or running, and nothing automated is due and ready to run."""
    if Task.objects.filter(run=run, status__in=[TaskStatus.QUEUED, TaskStatus.RUNNING]).exists():
        return False
    return not engine.runnable_tasks(run=run).filter(assignee_type=Assignee.SYSTEM).exists()


def _assert_each_effect_once(*, hook, ldap, entitlements, run):
    """Every entitlement revoked once: one webhook effect per webhook entitlement, LDAP memberships
    gone, seats returned, one REVOKE audit event each, and no task left unfinished."""
    ids = [e.pk for e in entitlements]
    assert set(Entitlement.objects.filter(pk__in=ids).values_list("status", flat=True)) == {EntitlementStatus.REVOKED}
    webhook_ents = [e for e in entitlements if e.application.connector == "webhook"]
    if hook is not None:
        revokes = [effect for effect in hook.effects if effect["event"] == "revoke"]
        keys = [effect["idempotency_key"] for effect in revokes]
        assert len(keys) == len(set(keys)), "an idempotency key was applied twice"
        applied_to = sorted(effect["application"] for effect in revokes)
        assert applied_to == sorted(e.application.name for e in webhook_ents), "one revoke effect per application"
        for e in webhook_ents:
            assert hook.accounts[e.employee.employee_number]["active"] is False
    for e in entitlements:
        if e.application.connector == "ldap":
            group = e.application.connector_config["groups"]["user"]
            assert ldap.members(group) == set(), f"{e.employee} is still in {group}"
    assert set(_seats(entitlements).values()) <= {0}, "every seat is returned"
    assert _revoke_events(entitlements) == len(entitlements), "one REVOKE audit event per entitlement"
    now = timezone.now()
    unfinished = Task.objects.filter(run=run).exclude(status=TaskStatus.DONE)
    assert not unfinished.filter(due_at__lte=now).exclude(depends_on__due_at__gt=now).exists(), "only later steps wait"


# --- Delivered twice -------------------------------------------------------------------------------


def test_double_delivery_to_a_real_worker_is_claimed_once(cluster, hook):
    from django_q.tasks import async_task

    employee, (entitlement,) = _leaver(hook=hook, webhook_apps=1)
    calls_before = len(hook.calls)
    run = _open_run(employee)
    task = engine.task_add(
        run=run, key="revoke", title="Revoke", action="rel_revoke", params={"entitlement": entitlement.pk}
    )
    hook.delay = 0.5  # the first delivery is still at the target when the others arrive
    engine.run_advance(run=run)  # queued, and enqueued once (on commit: autocommit here)
    for _ in range(2):
        async_task(EXECUTE_TASK, task.pk)  # two more deliveries of the same task
    wait_for(lambda: _task_done(task), timeout=30, every=engine.sweep, message=cluster.log_tail())
    time.sleep(1.5)  # let the other deliveries arrive and find nothing to claim

    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.DONE, 1)
    assert len(hook.calls) - calls_before == 1, "the claim kept the other deliveries from the target"
    assert [e["event"] for e in hook.effects].count("revoke") == 1
    assert _seats([entitlement]) == {entitlement.application_id: 0}
    assert _revoke_events([entitlement]) == 1


def test_paused_worker_is_taken_over_and_its_late_delivery_changes_nothing(cluster, hook, settings, tmp_path):
    """The claim is bypassed on purpose: a worker frozen mid-call (SIGSTOP, like a stalled VM) past
    the deadline is presumed dead and a second worker runs the task again. Both calls reach the
    target; the idempotency key makes it apply once; the frozen worker's completion is superseded."""
    employee, (entitlement,) = _leaver(hook=hook, webhook_apps=1)
    run = _open_run(employee)
    task = engine.task_add(
        run=run, key="revoke", title="Revoke", action="rel_revoke", params={"entitlement": entitlement.pk}
    )
    hook.delay = 1.0
    calls_before = len(hook.calls)
    engine.run_advance(run=run)
    wait_for(lambda: len(hook.calls) > calls_before, timeout=20, message="the first delivery never reached the target")
    os.killpg(cluster.process.pid, signal.SIGSTOP)  # frozen while the target works on the call
    second = QCluster(
        name=cluster.name, database=connection.settings_dict, settings_module=cluster.settings_module,
        redis_url=settings.REDIS_URL,
        deadlines=DEADLINES, preload=[__name__], log_path=tmp_path / "second.log",
    )  # fmt: skip
    try:
        second.start()
        time.sleep(DEADLINES.running)
        wait_for(lambda: _task_done(task), timeout=30, every=engine.sweep, message=second.log_tail())
        assert len(hook.calls) - calls_before == 2, "the second worker called the target again"
    finally:
        os.killpg(cluster.process.pid, signal.SIGCONT)
    # The frozen worker wakes up, gets its (long answered) response and tries to finish the task.
    time.sleep(2)
    second.kill()
    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.DONE, 2)
    assert [e["event"] for e in hook.effects].count("revoke") == 1
    assert _seats([entitlement]) == {entitlement.application_id: 0}
    assert _revoke_events([entitlement]) == 1


def test_replay_of_every_action_of_a_finished_leaver_run_changes_nothing(hook, ldap):
    """Each automated action of a leaver run delivered a second time (e.g. redelivered after a
    crash between its effect and its commit): no second webhook effect, LDAP and seats unchanged."""
    _leaver_template()
    employee, entitlements = _leaver(hook=hook, ldap=ldap, webhook_apps=2, ldap_apps=2)
    run = _start_leave(employee)  # the queue runs inline in tests
    assert _run_done(run)
    tasks = list(Task.objects.filter(run=run).exclude(action="").order_by("pk"))
    snapshot = (
        len(hook.effects),
        {k: dict(v) for k, v in hook.accounts.items()},
        ldap.people(),
        _seats(entitlements),
        _revoke_events(entitlements),
    )
    for task in tasks:
        registry[task.action].func(task)
    assert (
        len(hook.effects),
        {k: dict(v) for k, v in hook.accounts.items()},
        ldap.people(),
        _seats(entitlements),
        _revoke_events(entitlements),
    ) == snapshot
    _assert_each_effect_once(hook=hook, ldap=ldap, entitlements=entitlements, run=run)


# --- Killed mid-run --------------------------------------------------------------------------------


def test_worker_killed_mid_leaver_run_completes_with_each_effect_once(cluster, hook, ldap):
    _leaver_template()
    employee, entitlements = _leaver(hook=hook, ldap=ldap, webhook_apps=6, ldap_apps=4)
    hook.delay = 1.0  # a slow target: a wide window to kill the worker while a call is in flight
    run = _start_leave(employee)

    def mid_run():
        # A revoke call the peer is still holding (no answer yet): its task is running in a worker, and
        # stays so for the peer's delay, so the kill below lands while that call is in flight.
        in_flight = any(call.event == "revoke" and call.status == 0 for call in list(hook.calls))
        statuses = list(Task.objects.filter(run=run).values_list("status", flat=True))
        applied = sum(1 for e in hook.effects if e["event"] == "revoke")
        return in_flight and applied >= 2 and TaskStatus.RUNNING in statuses and len(statuses) > 1

    wait_for(mid_run, timeout=30, interval=0.02, message=cluster.log_tail())
    killed = cluster.kill()
    assert len(killed) >= 4 and cluster.pids() == []  # qcluster, sentinel, pusher, monitor and workers
    at_kill = dict(Task.objects.filter(run=run).values_list("pk", "status"))
    assert TaskStatus.RUNNING in at_kill.values()
    assert not _run_done(run)

    cluster.start()
    wait_for(lambda: _run_done(run), timeout=60, every=engine.sweep, message=cluster.log_tail())

    _assert_each_effect_once(hook=hook, ldap=ldap, entitlements=entitlements, run=run)
    interrupted = [pk for pk, status in at_kill.items() if status == TaskStatus.RUNNING]
    assert all(a >= 2 for a in Task.objects.filter(pk__in=interrupted).values_list("attempts", flat=True))
    run.refresh_from_db()
    assert run.time_to_deprovision is not None


# --- Failing connectors ----------------------------------------------------------------------------


def test_connector_failing_three_times_then_succeeding_ends_done_with_one_effect(cluster, hook):
    _leaver_template()
    employee, (entitlement,) = _leaver(hook=hook, webhook_apps=1)
    calls_before = len(hook.calls)
    hook.fail_next(3, status=503, body='{"error": "maintenance"}')
    run = _start_leave(employee)
    wait_for(lambda: _run_done(run), timeout=40, every=engine.sweep, message=cluster.log_tail())

    revoke = Task.objects.get(run=run, action="rel_revoke")
    assert (revoke.status, revoke.attempts, revoke.last_error) == (TaskStatus.DONE, 4, "")
    assert len(hook.calls) - calls_before == 4
    assert [e["event"] for e in hook.effects].count("revoke") == 1
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKED
    assert _seats([entitlement]) == {entitlement.application_id: 0}


def test_connector_always_failing_ends_failed_and_visible(cluster, hook):
    _leaver_template()
    employee, (entitlement,) = _leaver(hook=hook, webhook_apps=1)
    hook.fail_always(503, '{"error": "service unavailable"}')
    run = _start_leave(employee)

    def failed():
        return Task.objects.filter(run=run, action="rel_revoke", status=TaskStatus.FAILED).first()

    revoke = wait_for(failed, timeout=60, every=engine.sweep, message=cluster.log_tail())
    assert revoke.attempts == revoke.max_attempts
    assert "503" in revoke.last_error and "service unavailable" in revoke.last_error
    # Nothing half-done is hidden: the run stays open, the entitlement says it is being revoked
    # (not revoked), the target still has the account, and no revocation was recorded.
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.last_revocation_at is None
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKING
    assert hook.accounts[employee.employee_number]["active"] is True
    assert not [e for e in hook.effects if e["event"] == "revoke"]
    assert _revoke_events([entitlement]) == 0
    # Sweeping again does not bring a failed task back: it waits for a person.
    engine.sweep()
    time.sleep(1)
    revoke.refresh_from_db()
    assert revoke.status == TaskStatus.FAILED


# --- Concurrent terminations ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["employee_terminate", "run_start"])
def test_two_concurrent_terminations_make_one_run(file_db, how):
    from offboarding.flows.leaver import employee_terminate

    _leaver_template()
    TaskTemplate.objects.create(
        checklist=ChecklistTemplate.objects.get(name="Reliability leaver"), key="collect", title="Collect the laptop"
    )
    employee = EmployeeFactory()

    def terminate():
        if how == "employee_terminate":
            return employee_terminate(
                employee=employee, last_day=timezone.localdate(), acting_user=None, reason="concurrent"
            ).pk
        return _start_leave(employee).pk

    outcomes = run_at_once(terminate, terminate)
    assert kinds(outcomes) == ["ok", "ok"], outcomes
    runs = [run_id for _, run_id in outcomes]
    assert len(set(runs)) == 1
    assert ChecklistRun.objects.filter(employee=employee, kind=ChecklistKind.LEAVE).count() == 1
    keys = list(Task.objects.filter(run_id=runs[0]).values_list("key", flat=True))
    assert len(keys) == len(set(keys)) and len(keys) >= 2
    if how == "employee_terminate":
        assert AuditEvent.objects.filter(action=AuditEvent.Action.TERMINATE, target_id=str(employee.pk)).count() == 1


def test_worker_killed_mid_employee_terminate_completes_with_each_effect_once(cluster, hook, ldap):
    """The same, through the real leaver flow (`employee_terminate`) and its actions."""
    from offboarding.flows.leaver import employee_terminate

    employee, entitlements = _leaver(hook=hook, ldap=ldap, webhook_apps=6, ldap_apps=4)
    hook.delay = 1.0  # a wide window: on a loaded machine a 0.4 s call could finish between check and kill
    run = employee_terminate(employee=employee, last_day=timezone.localdate(), acting_user=None, immediate=True)

    def mid_run():
        applied = sum(1 for e in hook.effects if e["event"] == "revoke")
        return applied >= 2 and Task.objects.filter(run=run, status=TaskStatus.RUNNING).exists()

    wait_for(mid_run, timeout=30, interval=0.02, message=cluster.log_tail())
    cluster.kill()
    at_kill = dict(Task.objects.filter(run=run).values_list("pk", "status"))
    assert TaskStatus.RUNNING in at_kill.values()
    cluster.start()
    revoking = Task.objects.filter(run=run, action="revoke_entitlement")
    wait_for(
        lambda: _quiet(run) and revoking.count() == len(entitlements) and not revoking.exclude(status=TaskStatus.DONE),
        timeout=60,
        every=engine.sweep,
        message=cluster.log_tail(),
    )
    # Later steps (reminders, the retention purge) wait for their day; everything due is done.
    _assert_each_effect_once(hook=hook, ldap=ldap, entitlements=entitlements, run=run)
    run.refresh_from_db()
    assert run.time_to_deprovision is not None
    employee.refresh_from_db()
    assert employee.status == "terminated"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TERMINATE, target_id=str(employee.pk)).count() == 1
