"""A worker SIGKILLed while a target system holds its call: each effect happens exactly once.

The peer applies the change and withholds the answer (`hold`), so the kill lands while the call
is in flight after its effect: the hardest moment (the target did it, Portal never heard). A new
worker then finishes the layoff; the peers' own counts show one applied effect per entitlement
and the re-sent call that was absorbed: by the webhook peer's idempotency key, or by the LDAP
connector reading the group first and sending no second change.

On the Redis broker a message in flight is gone once a worker took it (no receipts; django-q2's
`retry` does nothing there): only the sweeper brings the task back. `test_redis_loses_...` shows
it, and measures how long that takes (with the test's deadlines; the production figure is in
the README, measured by `test_measure_recovery_with_production_timings`).
"""

import os
import time

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from offboarding import engine
from offboarding.models import Task, TaskStatus
from offboarding.tests.reliability.helpers import (
    DEADLINES,
    PeerMark,
    assert_each_effect_once,
    group_of,
    make_leaver,
    open_run,
    revocations_finished,
    task_done,
)
from portal.testing.worker import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _held_entitlement(kind, held, entitlements):
    if kind == "webhook":
        return next(e for e in entitlements if e.application.name == held.json["application"])
    return next(e for e in entitlements if e.application.connector == "ldap" and group_of(e).lower() == held.dn.lower())


@pytest.mark.parametrize("kind", ["ldap", "webhook"])
def test_worker_killed_while_the_peer_holds_a_revoke_call_applies_each_effect_once(cluster, hook, ldap, kind):
    from offboarding.flows.leaver import employee_terminate

    employee, entitlements = make_leaver(hook=hook, ldap=ldap, webhook_apps=3, ldap_apps=3)
    mark = PeerMark(hook=hook, ldap=ldap)
    if kind == "webhook":
        hook.hold("revoke")
    else:
        ldap.hold(op="modify")  # the first group change of the leaver run: a revocation
    run = employee_terminate(employee=employee, last_day=timezone.localdate(), acting_user=None, immediate=True)
    held = (hook if kind == "webhook" else ldap).wait_held(timeout=40)
    target = _held_entitlement(kind, held, entitlements)
    target_task = Task.objects.get(run=run, action="revoke_entitlement", params__entitlement=target.pk)
    # The effect is applied at the peer, the worker waits for the answer: kill it now.
    killed = cluster.kill()
    (hook if kind == "webhook" else ldap).release()
    assert len(killed) >= 4 and cluster.pids() == []  # qcluster, sentinel, pusher, monitor and workers
    target_task.refresh_from_db()
    assert (target_task.status, target_task.attempts) == (TaskStatus.RUNNING, 1), "killed mid-call"
    if kind == "webhook":
        assert len(hook.effects_for(event="revoke", application=target.application.name)) == 1, "applied before"
    else:
        assert len(mark.ldap_effects(dn=group_of(target))) == 1, "slapd applied it before the kill"
    killed_at = time.time()

    cluster.start()
    wait_for(
        lambda: revocations_finished(run, entitlements), timeout=50, every=engine.sweep, message=cluster.log_tail()
    )
    counts = assert_each_effect_once(mark=mark, entitlements=entitlements, run=run)
    target_task.refresh_from_db()
    assert (target_task.status, target_task.attempts) == (TaskStatus.DONE, 2), "run again after the kill"
    if kind == "webhook":
        again = mark.webhook_calls(key=held.idempotency_key)
        assert [(c.applied, c.absorbed) for c in again] == [(True, False), (False, True)], again
        assert counts["webhook_absorbed"] >= 1
    else:
        group = group_of(target)
        after = [c for c in mark.ldap_calls(dn=group) if c.received_at > killed_at]
        assert [c for c in after if c.op == "search"], "the new worker read the group again"
        assert not [c for c in after if c.is_write], f"a second change was sent to {group} after the kill"
        assert len([c for c in mark.ldap_calls(dn=group) if c.is_write]) == 1
    print(f"killed while the {kind} peer held the revoke of {target.application.name}: {counts}")
    run.refresh_from_db()
    assert run.time_to_deprovision is not None
    employee.refresh_from_db()
    assert employee.status == "terminated"


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="about the Redis broker (set REDIS_URL): the ORM broker "
                    "keeps a message until it is acknowledged")  # fmt: skip
def test_redis_loses_a_task_in_flight_when_its_worker_dies_and_the_sweeper_recovers_it(cluster, hook):
    import redis

    employee, (entitlement,) = make_leaver(hook=hook, webhook_apps=1)
    mark = PeerMark(hook=hook)
    run = open_run(employee)
    task = engine.task_add(
        run=run, key="revoke", title="Revoke", action="revoke_entitlement",
        params={"entitlement": entitlement.pk, "reason": "Leaver"},
    )  # fmt: skip
    hook.hold("revoke")
    engine.run_advance(run=run)
    held = hook.wait_held(timeout=30)
    cluster.kill()
    killed = time.monotonic()
    hook.release()
    cluster.start()
    queue = redis.from_url(django_settings.REDIS_URL)
    # Past every deadline of the broker: nothing comes back on its own. The message is not in Redis.
    time.sleep(DEADLINES.retry + 1)
    assert queue.llen(f"django_q:{cluster.name}:q") == 0
    assert len(mark.webhook_calls(key=held.idempotency_key)) == 1, "Redis delivered it again (it should not)"
    assert Task.objects.get(pk=task.pk).status == TaskStatus.RUNNING
    # The sweeper, at the test's pace, finds it running past RUNNING_DEADLINE and enqueues it again.
    wait_for(lambda: task_done(task), timeout=40, every=engine.sweep, message=cluster.log_tail())
    recovered_after = time.monotonic() - killed
    counts = assert_each_effect_once(mark=mark, entitlements=[entitlement])
    assert (counts["webhook_revoke_calls"], counts["webhook_absorbed"]) == (2, 1)
    print(
        f"Redis: task recovered by the sweeper {recovered_after:.1f} s after the kill "
        f"(RUNNING_DEADLINE {DEADLINES.running} s, sweeping every 0.1 s)"
    )
    assert recovered_after >= DEADLINES.running - 1  # not before the claim went stale


@pytest.mark.skipif(
    not os.environ.get("PORTAL_MEASURE_RECOVERY"),
    reason="a measurement with production timings (2-3 minutes): set PORTAL_MEASURE_RECOVERY=1",
)
def test_measure_recovery_with_production_timings(make_cluster, hook, migration_schedules, settings):
    """A worker with the production settings (Q_TIMEOUT 60, Q_RETRY 90, RUNNING_DEADLINE 90 s, the
    sweeper on django-q's schedule every minute, nothing run from the test): killed while a revoke
    is held at the peer, restarted at once. Prints how long until the task is done again."""
    from django.conf import settings as live

    from portal.testing.worker import enqueue_to

    settings.LIFECYCLE = dict(live.LIFECYCLE)  # production deadlines in this process too
    worker = make_cluster(deadlines=None, label="production")
    employee, (entitlement,) = make_leaver(hook=hook, webhook_apps=1)
    mark = PeerMark(hook=hook)
    with worker, enqueue_to(worker):
        run = open_run(employee)
        task = engine.task_add(
            run=run, key="revoke", title="Revoke", action="revoke_entitlement",
            params={"entitlement": entitlement.pk, "reason": "Leaver"},
        )  # fmt: skip
        hook.hold("revoke")
        engine.run_advance(run=run)
        held = hook.wait_held(timeout=60)
        worker.kill()
        killed = time.monotonic()
        hook.release()
        worker.start()
        wait_for(lambda: task_done(task), timeout=400, interval=0.5, message=worker.log_tail())
        recovered_after = time.monotonic() - killed
    counts = assert_each_effect_once(mark=mark, entitlements=[entitlement])
    resent = mark.webhook_calls(key=held.idempotency_key)
    broker = "redis" if settings.REDIS_URL else "orm"
    print(f"RECOVERY {broker}: {recovered_after:.1f} s from kill to done; calls {len(resent)}; {counts}")
