"""A task delivered more than once, or replayed, reaches each target system's effect once.

Real worker processes where the queue matters (`cluster`), threads where the moment matters
(`portal.testing.concurrency.run_at_once`), and real peers that count what they receive and
apply (`hook`, `ldap`). Each test runs on the stack the suite runs on: SQLite with the ORM broker
(SQLITE_TEST_PATH naming a file) or PostgreSQL with the Redis broker; CI runs both.

- delivered again while the first delivery is between its effect and its commit (the peer holds
  the answer): the claim keeps the others from the target (`test_double_delivery_...`);
- replayed between the effect and the commit by a delivery that took over a stale claim: the peer
  applies once, its idempotency key (webhook) or the connector's read-first (LDAP) absorbs the
  re-sent call, the first delivery is superseded (`test_replay_between_...`);
- a worker paused past the deadline is taken over (`test_paused_worker_...`);
- every action of a finished leaver run, delivered again, changes nothing (`test_replay_of_every_...`);
- a connector failing three times then succeeding ends done with one effect; one that always
  fails ends `failed`, with the target's error, and nothing claims to be done that is not;
- two concurrent terminations of the same person make one run.
Killing workers is in `test_kill.py`, two worker hosts in `test_hosts.py`.
"""

import datetime
import os
import signal
import time

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import EntitlementStatus
from accounts.tests.factories import EmployeeFactory
from offboarding import engine
from offboarding.actions import registry
from offboarding.models import ChecklistKind, ChecklistRun, ChecklistTemplate, RunStatus, Task, TaskStatus, TaskTemplate
from offboarding.tests.reliability.helpers import (
    DEADLINES,
    EXECUTE_TASK,
    PRELOAD,
    PeerMark,
    assert_each_effect_once,
    group_of,
    leaver_template,
    make_leaver,
    open_run,
    revoke_events,
    run_done,
    seats,
    start_leave,
    task_done,
)
from portal.models import AuditEvent
from portal.testing.concurrency import kinds, run_at_once
from portal.testing.worker import QCluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


# --- Delivered twice -------------------------------------------------------------------------------


def test_double_delivery_while_the_first_is_between_effect_and_commit_is_claimed_once(cluster, hook):
    """Two more deliveries arrive while the target has applied the first one's revoke and holds its
    answer (the effect happened, nothing is recorded yet): the claim keeps them from the target."""
    from django_q.tasks import async_task

    employee, (entitlement,) = make_leaver(hook=hook, webhook_apps=1)
    mark = PeerMark(hook=hook)
    run = open_run(employee)
    task = engine.task_add(
        run=run, key="revoke", title="Revoke", action="rel_revoke", params={"entitlement": entitlement.pk}
    )
    hook.hold("revoke")
    engine.run_advance(run=run)  # queued, and enqueued once (on commit: autocommit here)
    held = hook.wait_held(timeout=30)
    for _ in range(2):
        async_task(EXECUTE_TASK, task.pk)  # two more deliveries of the same task
    time.sleep(1.5)  # they arrive (ORM poll 0.5 s) and find the task running: nothing to claim
    assert Task.objects.get(pk=task.pk).status == TaskStatus.RUNNING
    hook.release()
    wait_for(lambda: task_done(task), timeout=30, every=engine.sweep, message=cluster.log_tail())

    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.DONE, 1)
    assert held.json["application"] == entitlement.application.name
    assert len(mark.webhook_calls()) == 1, "the claim kept the other deliveries from the target"
    counts = assert_each_effect_once(mark=mark, entitlements=[entitlement])
    assert counts["webhook_absorbed"] == 0


@pytest.mark.parametrize("kind", ["webhook", "ldap"])
def test_replay_between_the_connector_effect_and_the_commit_applies_once(file_db, hook, ldap, settings, kind):
    """The real `revoke_entitlement` action, delivered once; the peer applies the revoke and holds
    its answer. Meanwhile the claim goes stale (the worker is presumed dead) and a second delivery
    takes it over and runs the action to the end. Then the first gets its answer and tries to
    commit. The peer applied the revoke once: the webhook's idempotency key absorbed the re-sent
    call, the LDAP connector read the group and sent no second change; the first is superseded."""
    settings.LIFECYCLE = {**settings.LIFECYCLE, "RUNNING_DEADLINE": datetime.timedelta(seconds=0.5)}
    peer = hook if kind == "webhook" else ldap
    employee, (entitlement,) = make_leaver(
        hook=hook, ldap=ldap, webhook_apps=int(kind == "webhook"), ldap_apps=int(kind == "ldap"), timeout=30
    )
    mark = PeerMark(hook=hook, ldap=ldap)
    run = open_run(employee)
    task = engine.task_add(
        run=run, key="revoke", title="Revoke", action="revoke_entitlement",
        params={"entitlement": entitlement.pk, "reason": "Leaver"},
    )  # fmt: skip
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.QUEUED, queued_at=timezone.now())  # as enqueued
    if kind == "webhook":
        hook.hold("revoke")
    else:
        ldap.hold(op="modify", dn=group_of(entitlement))

    def first():
        return engine.task_execute(task_id=task.pk)

    def second():
        peer.wait_held(timeout=20)  # the first delivery's effect is applied, its commit not done
        time.sleep(0.6)  # its claim is stale now
        try:
            return engine.task_execute(task_id=task.pk)
        finally:
            peer.release()

    outcomes = run_at_once(first, second)
    assert outcomes == [("ok", "superseded"), ("ok", "done")], outcomes
    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.DONE, 2)
    counts = assert_each_effect_once(mark=mark, entitlements=[entitlement])
    if kind == "webhook":
        calls = mark.webhook_calls(event="revoke")
        assert len({c.idempotency_key for c in calls}) == 1, "both deliveries sent the task's key"
        assert [(c.applied, c.absorbed) for c in calls] == [(True, False), (False, True)], "one applied, one absorbed"
    else:
        group = group_of(entitlement)
        writes = [c for c in mark.ldap_calls(dn=group) if c.is_write]
        reads = mark.ldap_calls(op="search", dn=group)
        assert len(writes) == 1, f"the replay sent a second change to {group}: {writes}"
        assert len({c.connection for c in reads}) == 2, "both deliveries read the group (the second found it done)"
    print(f"replay between effect and commit ({kind}): {counts}")


def test_paused_worker_is_taken_over_and_its_late_delivery_changes_nothing(cluster, hook, settings, tmp_path):
    """The claim is bypassed on purpose: a worker frozen mid-call (SIGSTOP, like a stalled VM) past
    the deadline is presumed dead and a second worker runs the task again. Both calls reach the
    target; the idempotency key makes it apply once; the frozen worker's completion is superseded."""
    employee, (entitlement,) = make_leaver(hook=hook, webhook_apps=1)
    run = open_run(employee)
    task = engine.task_add(
        run=run, key="revoke", title="Revoke", action="rel_revoke", params={"entitlement": entitlement.pk}
    )
    hook.delay = 1.0
    calls_before = len(hook.calls)
    mark = PeerMark(hook=hook)
    engine.run_advance(run=run)
    wait_for(lambda: len(hook.calls) > calls_before, timeout=20, message="the first delivery never reached the target")
    os.killpg(cluster.process.pid, signal.SIGSTOP)  # frozen while the target works on the call
    second = QCluster(
        name=cluster.name, database=connection.settings_dict, settings_module=cluster.settings_module,
        redis_url=settings.REDIS_URL,
        deadlines=DEADLINES, preload=[PRELOAD], log_path=tmp_path / "second.log",
    )  # fmt: skip
    try:
        second.start()
        time.sleep(DEADLINES.running)
        wait_for(lambda: task_done(task), timeout=30, every=engine.sweep, message=second.log_tail())
        assert len(hook.calls) - calls_before == 2, "the second worker called the target again"
    finally:
        os.killpg(cluster.process.pid, signal.SIGCONT)
    # The frozen worker wakes up, gets its (long answered) response and tries to finish the task.
    time.sleep(2)
    second.kill()
    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.DONE, 2)
    counts = assert_each_effect_once(mark=mark, entitlements=[entitlement])
    assert (counts["webhook_revoke_calls"], counts["webhook_absorbed"]) == (2, 1), "the key absorbed the re-sent call"


def test_replay_of_every_action_of_a_finished_leaver_run_changes_nothing(hook, ldap):
    """Each automated action of a leaver run delivered a second time (e.g. redelivered after a
    crash between its effect and its commit): no second webhook effect, LDAP and seats unchanged."""
    leaver_template()
    employee, entitlements = make_leaver(hook=hook, ldap=ldap, webhook_apps=2, ldap_apps=2)
    before = PeerMark(hook=hook, ldap=ldap)
    run = start_leave(employee)  # the queue runs inline in tests
    assert run_done(run)
    mark = PeerMark(hook=hook, ldap=ldap)
    tasks = list(Task.objects.filter(run=run).exclude(action="").order_by("pk"))
    snapshot = (
        len(hook.effects),
        {k: dict(v) for k, v in hook.accounts.items()},
        ldap.people(),
        seats(entitlements),
        revoke_events(entitlements),
    )
    for task in tasks:
        registry[task.action].func(task)
    assert (
        len(hook.effects),
        {k: dict(v) for k, v in hook.accounts.items()},
        ldap.people(),
        seats(entitlements),
        revoke_events(entitlements),
    ) == snapshot
    assert mark.webhook_calls(event="revoke") == [] and [c for c in mark.ldap_calls() if c.is_write] == []
    assert mark.ldap_effects() == []
    assert_each_effect_once(mark=before, entitlements=entitlements, run=run)


# --- Failing connectors ----------------------------------------------------------------------------


def test_connector_failing_three_times_then_succeeding_ends_done_with_one_effect(cluster, hook):
    leaver_template()
    employee, (entitlement,) = make_leaver(hook=hook, webhook_apps=1)
    calls_before = len(hook.calls)
    hook.fail_next(3, status=503, body='{"error": "maintenance"}')
    run = start_leave(employee)
    wait_for(lambda: run_done(run), timeout=40, every=engine.sweep, message=cluster.log_tail())

    revoke = Task.objects.get(run=run, action="rel_revoke")
    assert (revoke.status, revoke.attempts, revoke.last_error) == (TaskStatus.DONE, 4, "")
    assert len(hook.calls) - calls_before == 4
    assert [e["event"] for e in hook.effects].count("revoke") == 1
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKED
    assert seats([entitlement]) == {entitlement.application_id: 0}


def test_connector_always_failing_ends_failed_and_visible(cluster, hook):
    leaver_template()
    employee, (entitlement,) = make_leaver(hook=hook, webhook_apps=1)
    hook.fail_always(503, '{"error": "service unavailable"}')
    run = start_leave(employee)

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
    assert revoke_events([entitlement]) == 0
    # Sweeping again does not bring a failed task back: it waits for a person.
    engine.sweep()
    time.sleep(1)
    revoke.refresh_from_db()
    assert revoke.status == TaskStatus.FAILED


# --- Concurrent terminations ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["employee_terminate", "run_start"])
def test_two_concurrent_terminations_make_one_run(file_db, how):
    from offboarding.flows.leaver import employee_terminate

    leaver_template()
    TaskTemplate.objects.create(
        checklist=ChecklistTemplate.objects.get(name="Reliability leaver"), key="collect", title="Collect the laptop"
    )
    employee = EmployeeFactory()

    def terminate():
        if how == "employee_terminate":
            return employee_terminate(
                employee=employee, last_day=timezone.localdate(), acting_user=None, reason="concurrent"
            ).pk
        return start_leave(employee).pk

    outcomes = run_at_once(terminate, terminate)
    assert kinds(outcomes) == ["ok", "ok"], outcomes
    runs = [run_id for _, run_id in outcomes]
    assert len(set(runs)) == 1
    assert ChecklistRun.objects.filter(employee=employee, kind=ChecklistKind.LEAVE).count() == 1
    keys = list(Task.objects.filter(run_id=runs[0]).values_list("key", flat=True))
    assert len(keys) == len(set(keys)) and len(keys) >= 2
    if how == "employee_terminate":
        assert AuditEvent.objects.filter(action=AuditEvent.Action.TERMINATE, target_id=str(employee.pk)).count() == 1
