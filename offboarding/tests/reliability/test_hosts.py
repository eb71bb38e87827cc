"""Two worker hosts on one PostgreSQL, a layoff running, one host SIGKILLed mid-way: the other
completes the layoff and every effect happens exactly once (counted by the peers).

Each "host" is its own `qcluster` (its own sentinel, pusher, monitor and workers) in its own
process group, consuming the same queue. Not in their own network namespaces: `unshare -rn`
works on this machine, but a new namespace has its own loopback, and PostgreSQL (TCP only, no
Unix socket here), Redis and the two peers all listen on the host's 127.0.0.1; joining them
needs a veth pair (root) or slirp4netns (not installed). What a second host changes for the
engine is a second set of processes claiming from the same rows, which this has.

PostgreSQL only: SQLite is one machine's file, never shared by two hosts.
"""

import time

import pytest
from django.db import connection
from django.utils import timezone

from offboarding import engine
from offboarding.models import Task, TaskStatus
from offboarding.tests.reliability.helpers import (
    PeerMark,
    assert_each_effect_once,
    make_apps,
    make_leaver,
    revocations_finished,
)
from portal.testing.worker import enqueue_to, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LEAVERS = 30


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("two worker hosts share a database server: PostgreSQL only (SQLite is one machine's file)")


def test_layoff_completes_on_the_other_host_when_one_is_killed(postgresql, make_cluster, hook, ldap):
    from offboarding.flows.leaver import employee_terminate

    started = time.monotonic()
    apps = make_apps(hook=hook, ldap=ldap, webhook_apps=2, ldap_apps=2)
    leavers = [make_leaver(apps=apps) for _ in range(LEAVERS)]
    entitlements = [e for _, ents in leavers for e in ents]
    mark = PeerMark(hook=hook, ldap=ldap)
    set_up = time.monotonic() - started
    hosts = [make_cluster(label="host-a"), make_cluster(label="host-b")]
    for host in hosts:
        host.purge()
        host.start()
    with enqueue_to(hosts[0]):  # the same queue for both
        runs = [
            employee_terminate(employee=employee, last_day=timezone.localdate(), acting_user=None, immediate=True)
            for employee, _ in leavers
        ]
        # Mid-way (a third of the webhook revocations applied), the next one is held at the peer.
        total_webhook = sum(e.application.connector == "webhook" for e in entitlements)
        wait_for(lambda: len(hook.effects_for(event="revoke")) >= total_webhook // 3, timeout=40, every=engine.sweep)
        hook.hold("revoke")
        held = hook.wait_held(timeout=30)
        victim = next(host for host in hosts if host.holds_connection_from(held.client[1]))
        survivor = next(host for host in hosts if host is not victim)
        done_before = Task.objects.filter(run__in=runs, action="revoke_entitlement", status=TaskStatus.DONE).count()
        victim.kill()
        hook.release()
        killed_at = time.monotonic()
        assert survivor.alive and not victim.alive
        assert 0 < done_before < len(entitlements), "killed mid-way through the layoff"

        def finished():
            return all(revocations_finished(run, ents) for run, (_, ents) in zip(runs, leavers, strict=True))

        wait_for(finished, timeout=50, interval=0.3, every=engine.sweep, message=survivor.log_tail())
        completed_in = time.monotonic() - killed_at
    assert survivor.alive, "the surviving host finished the layoff alone"
    counts = assert_each_effect_once(mark=mark, entitlements=entitlements)
    assert counts["ldap_group_writes"] == counts["ldap_group_effects"], "no LDAP change was sent twice"
    again = mark.webhook_calls(key=held.idempotency_key)
    assert [(c.applied, c.absorbed) for c in again] == [(True, False), (False, True)], again
    print(
        f"{LEAVERS} leavers, {len(entitlements)} revocations; host killed after {done_before}; "
        f"the other finished {completed_in:.1f} s later (set-up {set_up:.1f} s); peers: {counts}"
    )
