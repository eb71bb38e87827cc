"""Executing tasks (offboarding.engine.execution): claiming, dependencies, failures, backoff, concurrent deliveries.

The test actions are in `offboarding.tests.actions`.
"""

import datetime

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import (
    EmployeeFactory,
)
from offboarding import engine
from offboarding.engine.execution import _backoff, _task_failed
from offboarding.models import (
    Assignee,
    ChecklistKind,
    ChecklistTemplate,
    RunStatus,
    Task,
    TaskStatus,
    TaskTemplate,
)
from offboarding.tests.actions import calls, failures_left
from offboarding.tests.factories import make_template, one_task_template, start
from portal.models import AuditEvent
from portal.testing.concurrency import kinds, run_at_once

pytestmark = pytest.mark.django_db


# --- Claiming and dependencies -----------------------------------------------------------------------


def test_a_no_op_task_takes_five_queries_claim_to_outcome():
    """Claim (one UPDATE ... RETURNING), then in one transaction the outcome and the run's next step
    (one read of its unfinished tasks, each marked runnable or not). The queue's throughput is
    bounded by these. (7 before the claim returned the row and the two reads of the run's next
    step became one.)"""
    template = ChecklistTemplate.objects.create(name="No-ops", kind=ChecklistKind.MOVE)
    for key in ("a", "b"):
        TaskTemplate.objects.create(checklist=template, key=key, title="N", assignee=Assignee.SYSTEM, action="noop")
    run = start(EmployeeFactory(), kind=ChecklistKind.MOVE)
    first, second = run.tasks.filter(action="noop").order_by("pk")
    with CaptureQueriesContext(connection) as queries:
        assert engine.task_execute(task_id=first.pk) == "done"
    # claim UPDATE ... RETURNING; SAVEPOINT (the test's transaction), outcome UPDATE, unfinished
    # tasks SELECT, RELEASE
    assert len(queries) == 5, [q["sql"] for q in queries.captured_queries]
    first.refresh_from_db()
    assert (first.status, first.attempts, first.result) == (TaskStatus.DONE, 1, {})
    assert engine.task_execute(task_id=second.pk) == "done"
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


def test_in_a_worker_a_no_op_task_deletes_its_message_with_its_outcome(monkeypatch, django_capture_on_commit_callbacks):
    """On the ORM broker the message goes in the outcome's transaction (one DELETE more, six queries),
    and the monitor is told not to delete it afterwards: one write transaction per task fewer."""
    from django_q.conf import Conf
    from django_q.models import OrmQ

    from portal import queue

    template = ChecklistTemplate.objects.create(name="No-ops", kind=ChecklistKind.MOVE)
    for key in ("a", "b"):
        TaskTemplate.objects.create(checklist=template, key=key, title="N", assignee=Assignee.SYSTEM, action="noop")
    run = start(EmployeeFactory(), kind=ChecklistKind.MOVE)
    first = run.tasks.filter(action="noop").order_by("pk").first()
    monkeypatch.setattr(Conf, "ORM", "default", raising=False)
    broker = queue.BulkOrmBroker(list_key="portal-test-worker")
    monkeypatch.setattr(queue, "_broker", lambda cluster: broker)
    message = OrmQ.objects.create(key="portal-test-worker", payload="the task's package", lock=timezone.now())
    package = {"ack_id": message.pk, "success": True}
    queue.delivery_started(task=package)  # django-q2's pre_execute in the worker
    try:
        with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
            assert engine.task_execute(task_id=first.pk) == "done"
        queue.delivery_finished(task=package)  # post_execute_in_worker, before the monitor sees it
    finally:
        queue.delivery_finished(task={})
    assert len(queries) == 6, [q["sql"] for q in queries.captured_queries]
    assert not OrmQ.objects.filter(pk=message.pk).exists()
    assert "ack_id" not in package


def test_second_delivery_of_a_task_does_nothing():
    make_template()
    run = start(EmployeeFactory())
    first = run.tasks.get(key__endswith=":first")
    assert first.status == TaskStatus.QUEUED
    assert engine.task_execute(task_id=first.pk) == "done"
    assert engine.task_execute(task_id=first.pk) == "not-claimed"
    assert calls == [first.pk]


def test_a_delivery_while_the_task_runs_elsewhere_finds_nothing_to_claim():
    make_template()
    run = start(EmployeeFactory())
    first = run.tasks.get(key__endswith=":first")
    assert engine.task_claim(task_id=first.pk) is not None  # a worker has it
    assert engine.task_claim(task_id=first.pk) is None
    assert engine.task_execute(task_id=first.pk) == "not-claimed"
    assert calls == []


def test_a_late_original_delivery_cannot_overwrite_the_outcome_of_the_takeover():
    make_template()
    run = start(EmployeeFactory())
    first = run.tasks.get(key__endswith=":first")
    stale = engine.task_claim(task_id=first.pk, now=timezone.now() - datetime.timedelta(hours=1))
    assert stale is not None
    assert engine.task_execute(task_id=first.pk) == "done"  # takes over the stale claim
    # The original worker wakes up and fails: its outcome is discarded.
    assert _task_failed(stale, RuntimeError("late")) == "superseded"
    first.refresh_from_db()
    assert (first.status, first.attempts, first.last_error) == (TaskStatus.DONE, 2, "")


def test_dependencies_gate_tasks(django_capture_on_commit_callbacks):
    make_template()
    run = start(EmployeeFactory())
    first = run.tasks.get(key__endswith=":first")
    second = run.tasks.get(key__endswith=":second")
    assert (first.status, second.status) == (TaskStatus.QUEUED, TaskStatus.PENDING)
    assert list(engine.runnable_tasks(run=run)) == []
    with django_capture_on_commit_callbacks(execute=True):
        engine.task_execute(task_id=first.pk)
    second.refresh_from_db()
    assert second.status == TaskStatus.DONE
    assert calls == [first.pk, second.pk]


def test_a_skipped_dependency_releases_the_tasks_waiting_for_it(django_capture_on_commit_callbacks, it_admin):
    make_template()
    run = start(EmployeeFactory(), effective_at=timezone.now() - datetime.timedelta(minutes=1))
    first = run.tasks.get(key__endswith=":first")
    Task.objects.filter(pk=first.pk).update(status=TaskStatus.FAILED, last_error="boom")
    with django_capture_on_commit_callbacks(execute=True):
        engine.task_skip(task=first, acting_user=it_admin, reason="Done by hand")
    run.refresh_from_db()
    assert run.tasks.get(key__endswith=":second").status == TaskStatus.DONE
    assert run.status == RunStatus.DONE


def test_future_tasks_wait_for_the_sweeper(django_capture_on_commit_callbacks):
    make_template()
    later = timezone.now() + datetime.timedelta(days=3)
    run = start(EmployeeFactory(), effective_at=later)
    assert set(run.tasks.values_list("status", flat=True)) == {TaskStatus.PENDING}
    with django_capture_on_commit_callbacks(execute=True):
        engine.sweep(now=later - datetime.timedelta(minutes=1))
    assert calls == []
    with django_capture_on_commit_callbacks(execute=True):
        engine.sweep(now=later + datetime.timedelta(minutes=1))
    assert len(calls) == 1  # the second waits for the first; the next sweep picks it up
    with django_capture_on_commit_callbacks(execute=True):
        engine.sweep(now=later + datetime.timedelta(minutes=2))
    assert len(calls) == 2
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


# --- Failures and retries -------------------------------------------------------------------------


def _sweep_until_settled(task, django_capture_on_commit_callbacks, limit=20):
    """Advance time past each backoff with the sweeper until the task is done or failed."""
    for _ in range(limit):
        task.refresh_from_db()
        if task.status in (TaskStatus.DONE, TaskStatus.FAILED):
            return task
        assert task.status == TaskStatus.PENDING and task.not_before is not None
        with django_capture_on_commit_callbacks(execute=True):
            engine.sweep(now=task.not_before + datetime.timedelta(seconds=1))
    raise AssertionError("the task did not settle")


def test_an_action_failing_three_times_then_succeeding_ends_done_with_four_attempts(
    django_capture_on_commit_callbacks,
):
    one_task_template(action="test_flaky")
    failures_left["only"] = 3
    with django_capture_on_commit_callbacks(execute=True):
        run = start(EmployeeFactory())
    task = run.tasks.get()
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING and task.attempts == 1
    assert "target unavailable" in task.last_error
    first_backoff = task.not_before - timezone.now()
    assert datetime.timedelta(seconds=20) < first_backoff <= datetime.timedelta(seconds=30)
    task = _sweep_until_settled(task, django_capture_on_commit_callbacks)
    assert (task.status, task.attempts, task.last_error, task.result) == (TaskStatus.DONE, 4, "", {"ok": True})
    assert len(calls) == 4
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


def test_backoff_grows_exponentially_up_to_a_maximum(settings):
    settings.LIFECYCLE = {
        **settings.LIFECYCLE,
        "BACKOFF_BASE": datetime.timedelta(seconds=10),
        "BACKOFF_MAX": datetime.timedelta(seconds=60),
    }
    assert [_backoff(n).total_seconds() for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]


def test_an_always_failing_action_ends_failed_after_max_attempts_with_its_error(django_capture_on_commit_callbacks):
    one_task_template(action="test_flaky", max_attempts=3)
    failures_left["only"] = -1  # forever
    with django_capture_on_commit_callbacks(execute=True):
        run = start(EmployeeFactory())
    task = _sweep_until_settled(run.tasks.get(), django_capture_on_commit_callbacks)
    assert (task.status, task.attempts, task.max_attempts) == (TaskStatus.FAILED, 3, 3)
    assert task.last_error.startswith("Attempt 3 of 3: ConnectionError: target unavailable for only")
    assert len(calls) == 3
    # A failed task waits for a person: sweeping again changes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        engine.sweep(now=timezone.now() + datetime.timedelta(days=1))
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED and len(calls) == 3
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_a_task_failed_for_good_alerts_it_once_until_it_is_retried(
    django_capture_on_commit_callbacks, settings, it_admin
):
    settings.IT_TEAM_EMAIL = "it-team@example.com"
    one_task_template(action="test_flaky", max_attempts=2, title="Revoke the VPN")
    failures_left["only"] = -1  # forever
    with django_capture_on_commit_callbacks(execute=True):
        run = start(EmployeeFactory(first_name="Lee", last_name="Leaver"))
    task = _sweep_until_settled(run.tasks.get(), django_capture_on_commit_callbacks)
    assert task.status == TaskStatus.FAILED and task.failure_alerted_at is not None

    def alerts():
        return [m for m in mail.outbox if m.to == ["it-team@example.com"]]

    (alert,) = alerts()
    assert alert.subject == "Blocked: “Revoke the VPN” failed for Lee Leaver"
    assert "Attempt 2 of 2: ConnectionError: target unavailable for only" in alert.body
    assert f"/admin/offboarding/task/{task.pk}/change/" in alert.body
    assert f"/admin/offboarding/checklistrun/{run.pk}/change/" in alert.body
    event = AuditEvent.objects.get(action=AuditEvent.Action.TASK_FAILED)
    assert (event.target_id, event.actor, event.detail["attempts"]) == (str(task.pk), None, 2)

    # A second delivery, a late failure of a stale claim, the sweeper, a direct second call: no second email.
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.task_execute(task_id=task.pk) == "not-claimed"
        assert _task_failed(task, RuntimeError("late")) == "superseded"
        assert engine.sweep(now=timezone.now() + datetime.timedelta(days=1))["alerted"] == 0
        assert engine.task_failure_alert(task_id=task.pk) is False
    assert len(alerts()) == 1 and AuditEvent.objects.filter(action=AuditEvent.Action.TASK_FAILED).count() == 1

    # IT retries; it fails for good again: that is a new failure, told again.
    with django_capture_on_commit_callbacks(execute=True):
        engine.task_retry(task=task, acting_user=it_admin, reason="VPN back up")
    task = _sweep_until_settled(task, django_capture_on_commit_callbacks)
    assert task.status == TaskStatus.FAILED
    assert len(alerts()) == 2


def test_an_error_that_retrying_cannot_help_fails_the_task_at_once(django_capture_on_commit_callbacks, recording):
    """A connector saying `retryable=False` (a refused bind, a missing group) is not tried 5 times."""
    from accounts.connectors import ConnectorError
    from accounts.tests.factories import ApplicationFactory, EntitlementFactory
    from accounts.tests.fakes import RecordingConnector
    from offboarding.models import ChecklistKind

    employee = EmployeeFactory()
    retried = EntitlementFactory(employee=employee, application=ApplicationFactory(connector=RecordingConnector.kind))
    run = start(employee, ChecklistKind.ACCESS)
    task = engine.task_add(
        run=run, key="revoke", title="Revoke", action="revoke_entitlement", params={"entitlement": retried.pk}
    )
    RecordingConnector.fail["revoke"] = ConnectorError("Group cn=x does not exist.", retryable=False)
    with django_capture_on_commit_callbacks(execute=True):
        engine.run_advance(run=run)
    task.refresh_from_db()
    assert (task.status, task.attempts, task.max_attempts) == (TaskStatus.FAILED, 1, 5)
    assert task.last_error.startswith("Attempt 1 of 5, not retried (trying again cannot help): ")
    assert task.failure_alerted_at is not None

    RecordingConnector.fail["revoke"] = ConnectorError("LDAP server is unreachable.")  # retryable
    with django_capture_on_commit_callbacks(execute=True):
        engine.task_retry(task=task, acting_user=None, reason="try again")
    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.PENDING, 1) and task.not_before is not None


def test_an_action_returning_something_else_than_a_dict_fails_the_attempt(django_capture_on_commit_callbacks):
    one_task_template(action="test_bad_result", max_attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        run = start(EmployeeFactory())
    task = run.tasks.get()
    assert task.status == TaskStatus.FAILED
    assert "returned str, not a dict, Handoff or Repeat" in task.last_error


# --- Concurrency (PostgreSQL: real threads, real transactions) ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_deliveries_claim_once():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers (IMMEDIATE transactions): no real concurrency to test.")
    one_task_template()
    run = start(EmployeeFactory(), effective_at=timezone.now() + datetime.timedelta(days=1))
    task = run.tasks.get()
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.QUEUED, queued_at=timezone.now())  # as if enqueued
    outcomes = run_at_once(*[lambda: engine.task_execute(task_id=task.pk)] * 6)
    assert kinds(outcomes) == ["ok"] * 6, outcomes
    assert sorted(value for _, value in outcomes) == ["done"] + ["not-claimed"] * 5
    assert calls == [task.pk]
