"""The delivery and SIGKILL reliability suites on SCIM targets: each effect reaches the peer once.

The peer is scim2-server (python-scim's service provider), one tenant per application, behind a
front door that counts every call and every applied write and can hold an answer after the write
is applied (`portal.testing.scim_server`). SCIM has no idempotency key: what absorbs a re-sent
call is the connector reading the user and the group first and sending nothing that is already
so. A revocation is two writes at the peer (the membership removed, then `active: false`); the
assertions count both, per application, after the set-up (`ScimMark`).

- two more deliveries while the first is between its effect and its commit: the claim keeps them
  from the target;
- a replay that took over a stale claim between the effect and the commit: it reads, finds the
  revocation done and writes nothing; the first delivery is superseded;
- a worker SIGKILLed while the peer holds a revoke it already applied: the new worker reads,
  finds it done, and the other revocations of the leaver complete, each once;
- every action of a finished leaver run delivered again changes nothing at the peer.
"""

import datetime
import time

import pytest
from django.utils import timezone

from offboarding import engine
from offboarding.actions import registry
from offboarding.models import Task, TaskStatus
from offboarding.tests.reliability.helpers import (
    EXECUTE_TASK,
    ScimMark,
    assert_scim_effects_once,
    leaver_template,
    make_leaver,
    make_scim_apps,
    open_run,
    revocations_finished,
    run_done,
    scim_tenant,
    seats,
    start_leave,
    task_done,
)
from portal.testing.concurrency import run_at_once
from portal.testing.worker import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_scim_double_delivery_while_the_first_is_between_effect_and_commit_is_claimed_once(cluster, scim):
    from django_q.tasks import async_task

    employee, (entitlement,) = make_leaver(apps=make_scim_apps(scim, 1))
    mark = ScimMark(scim)
    run = open_run(employee)
    task = engine.task_add(
        run=run, key="revoke", title="Revoke", action="rel_revoke", params={"entitlement": entitlement.pk}
    )
    scim.hold("PATCH", path="/Users/")  # the deactivation, the revocation's last write
    engine.run_advance(run=run)
    held = scim.wait_held(timeout=30)
    for _ in range(2):
        async_task(EXECUTE_TASK, task.pk)  # two more deliveries of the same task
    time.sleep(1.5)  # they arrive and find the task running: nothing to claim
    assert Task.objects.get(pk=task.pk).status == TaskStatus.RUNNING
    scim.release()
    wait_for(lambda: task_done(task), timeout=30, every=engine.sweep, message=cluster.log_tail())

    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.DONE, 1)
    assert held.tenant == scim_tenant(entitlement.application)
    counts = assert_scim_effects_once(mark=mark, entitlements=[entitlement])
    assert counts["scim_writes"] == 2, "the claim kept the other deliveries from the target"
    print(f"SCIM double delivery: {counts}")


def test_scim_replay_between_the_connector_effect_and_the_commit_applies_once(file_db, scim, settings):
    """The real `revoke_entitlement` action; the peer applies the deactivation and holds its answer.
    The claim goes stale and a second delivery takes it over: it reads the user (inactive) and the
    group (no longer a member) and writes nothing. Then the first gets its answer: superseded."""
    settings.LIFECYCLE = {**settings.LIFECYCLE, "RUNNING_DEADLINE": datetime.timedelta(seconds=0.5)}
    employee, (entitlement,) = make_leaver(apps=make_scim_apps(scim, 1, timeout=30))
    mark = ScimMark(scim)
    run = open_run(employee)
    task = engine.task_add(
        run=run, key="revoke", title="Revoke", action="revoke_entitlement",
        params={"entitlement": entitlement.pk, "reason": "Leaver"},
    )  # fmt: skip
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.QUEUED, queued_at=timezone.now())  # as enqueued
    scim.hold("PATCH", path="/Users/")
    replay_started = []

    def first():
        return engine.task_execute(task_id=task.pk)

    def second():
        scim.wait_held(timeout=20)  # the first delivery's effect is applied, its commit not done
        time.sleep(0.6)  # its claim is stale now
        replay_started.append(len(scim.calls))
        try:
            return engine.task_execute(task_id=task.pk)
        finally:
            scim.release()

    outcomes = run_at_once(first, second)
    assert outcomes == [("ok", "superseded"), ("ok", "done")], outcomes
    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.DONE, 2)
    counts = assert_scim_effects_once(mark=mark, entitlements=[entitlement])
    replay = scim.calls[replay_started[0] :]
    assert replay and not [c for c in replay if c.is_write], f"the replay wrote to the target: {replay}"
    assert {c.resource for c in replay} >= {"Users", "Groups"}, "the replay read the user and the group"
    print(f"SCIM replay between effect and commit: {counts}; the replay's calls: {len(replay)}, all reads")


def test_worker_killed_while_the_scim_peer_holds_a_revoke_applies_each_effect_once(cluster, scim):
    from offboarding.flows.leaver import employee_terminate

    employee, entitlements = make_leaver(apps=make_scim_apps(scim, 4))
    mark = ScimMark(scim)
    scim.hold("PATCH", path="/Users/")  # the first deactivation of the leaver run
    run = employee_terminate(employee=employee, last_day=timezone.localdate(), acting_user=None, immediate=True)
    held = scim.wait_held(timeout=40)
    target = next(e for e in entitlements if scim_tenant(e.application) == held.tenant)
    target_task = Task.objects.get(run=run, action="revoke_entitlement", params__entitlement=target.pk)
    killed = cluster.kill()  # the peer applied the deactivation; the worker waits for the answer
    scim.release()
    assert len(killed) >= 4 and cluster.pids() == []
    target_task.refresh_from_db()
    assert (target_task.status, target_task.attempts) == (TaskStatus.RUNNING, 1), "killed mid-call"
    assert scim.user(employee.work_email, tenant=held.tenant)["active"] is False, "applied before the kill"
    killed_at = time.time()

    cluster.start()
    wait_for(
        lambda: revocations_finished(run, entitlements), timeout=50, every=engine.sweep, message=cluster.log_tail()
    )
    counts = assert_scim_effects_once(mark=mark, entitlements=entitlements)
    target_task.refresh_from_db()
    assert (target_task.status, target_task.attempts) == (TaskStatus.DONE, 2), "run again after the kill"
    after = [c for c in mark.calls(tenant=held.tenant) if c.received_at > killed_at]
    assert [c for c in after if c.method == "GET" and c.resource == "Users"], "the new worker read the user again"
    assert not [c for c in after if c.is_write], f"a second write reached {held.tenant} after the kill: {after}"
    print(f"killed while the SCIM peer held the deactivation in {held.tenant}: {counts}; re-sent calls absorbed "
          f"by reading first: {len(after)} reads, 0 writes")  # fmt: skip
    employee.refresh_from_db()
    assert employee.status == "terminated"


def test_replay_of_every_action_of_a_finished_scim_leaver_run_changes_nothing(scim):
    leaver_template()
    employee, entitlements = make_leaver(apps=make_scim_apps(scim, 2))
    before = ScimMark(scim)
    run = start_leave(employee)  # the queue runs inline in tests
    assert run_done(run)
    mark = ScimMark(scim)
    snapshot = ({t: scim.users(tenant=t) for t in scim.storages}, seats(entitlements))
    for task in Task.objects.filter(run=run).exclude(action="").order_by("pk"):
        registry[task.action].func(task)
    assert ({t: scim.users(tenant=t) for t in scim.storages}, seats(entitlements)) == snapshot
    assert mark.calls(writes=True) == [], "a replayed action wrote to the target"
    assert_scim_effects_once(mark=before, entitlements=entitlements)
