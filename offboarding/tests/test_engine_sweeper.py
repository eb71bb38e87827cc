"""The sweeper (offboarding.engine.sweeper): recovery of lost and stalled tasks, closing idle runs, the schedules."""

import datetime

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from accounts.tests.factories import EmployeeFactory
from offboarding import engine
from offboarding.models import (
    ChecklistRun,
    RunStatus,
    Task,
    TaskStatus,
)
from offboarding.tests.actions import calls
from offboarding.tests.factories import one_task_template, start

pytestmark = pytest.mark.django_db


# --- Lost and stalled tasks ------------------------------------------------------------------------


def _queued_task():
    """A task queued but not delivered (the broker lost it)."""
    one_task_template()
    run = start(EmployeeFactory())  # not executed: on-commit callbacks are not run here
    task = run.tasks.get()
    assert task.status == TaskStatus.QUEUED
    return run, task


def test_sweeper_requeues_a_task_stuck_in_queued_and_it_runs_once(django_capture_on_commit_callbacks):
    run, task = _queued_task()
    with django_capture_on_commit_callbacks(execute=True):
        counts = engine.sweep()
    assert counts["requeued_queued"] == 0  # not past the deadline yet
    assert calls == []
    Task.objects.filter(pk=task.pk).update(queued_at=timezone.now() - datetime.timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        counts = engine.sweep()
    assert counts["requeued_queued"] == 1
    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.DONE, 1)
    assert calls == [task.pk]
    # The original delivery turns up after all: nothing to claim, no second effect.
    assert engine.task_execute(task_id=task.pk) == "not-claimed"
    assert calls == [task.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


def test_sweeper_takes_over_a_task_whose_worker_died_and_it_runs_once(django_capture_on_commit_callbacks):
    run, task = _queued_task()
    # A worker claimed it an hour ago, then died: running, started long ago, no outcome.
    Task.objects.filter(pk=task.pk).update(
        status=TaskStatus.RUNNING, started_at=timezone.now() - datetime.timedelta(hours=1), attempts=1
    )
    with django_capture_on_commit_callbacks(execute=True):
        counts = engine.sweep()
    assert counts["requeued_running"] == 1
    task.refresh_from_db()
    assert (task.status, task.attempts) == (TaskStatus.DONE, 2)
    assert calls == [task.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.sweep()["requeued_running"] == 0
    assert calls == [task.pk]


def test_sweeper_leaves_a_task_running_within_its_deadline_alone(django_capture_on_commit_callbacks):
    run, task = _queued_task()
    engine.task_claim(task_id=task.pk)
    with django_capture_on_commit_callbacks(execute=True):
        counts = engine.sweep()
    assert counts["requeued_running"] == 0
    task.refresh_from_db()
    assert task.status == TaskStatus.RUNNING and calls == []


def test_a_task_whose_worker_died_on_its_last_attempt_is_failed_with_the_reason(django_capture_on_commit_callbacks):
    run, task = _queued_task()
    Task.objects.filter(pk=task.pk).update(
        status=TaskStatus.RUNNING,
        started_at=timezone.now() - datetime.timedelta(hours=1),
        attempts=task.max_attempts,
    )
    assert engine.task_claim(task_id=task.pk) is None  # no attempts left to take over
    with django_capture_on_commit_callbacks(execute=True):
        counts = engine.sweep()
    assert counts["failed_stalled"] == 1 and counts["requeued_running"] == 0 and counts["alerted"] == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED and task.failure_alerted_at is not None
    assert "stopped responding" in task.last_error
    assert calls == []
    (alert,) = mail.outbox
    assert alert.to == [settings.IT_TEAM_EMAIL] and "stopped responding" in alert.body
    # The next sweep finds the failed task again and tells nobody twice.
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.sweep()["alerted"] == 0
    assert len(mail.outbox) == 1


def test_the_sweeper_alerts_it_of_a_failed_task_nobody_was_told_of(django_capture_on_commit_callbacks):
    """A task failed before alerts existed (or by any other path) is told once, by the next sweep."""
    run, task = _queued_task()
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.FAILED, last_error="Attempt 5 of 5: old failure")
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.sweep()["alerted"] == 1
        assert engine.sweep()["alerted"] == 0
    (alert,) = mail.outbox
    assert "old failure" in alert.body
    # Not for a run that is over: cancelled runs' failures are nobody's work.
    other_run = start(EmployeeFactory())
    other_run.tasks.update(status=TaskStatus.FAILED)
    ChecklistRun.objects.filter(pk=other_run.pk).update(status=RunStatus.CANCELLED)
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.sweep()["alerted"] == 0
    assert len(mail.outbox) == 1


def test_sweeper_closes_an_open_run_with_nothing_left_to_do():
    run = start(EmployeeFactory())
    assert run.status == RunStatus.RUNNING
    assert engine.sweep()["closed"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert engine.sweep()["closed"] == 0
