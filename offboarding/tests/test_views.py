"""Self-service pages of the lifecycle (offboarding.views): people's own tasks and the manager's team."""

import pytest
from django.urls import reverse
from django.utils import timezone

from offboarding.engine import run_start, task_add
from offboarding.models import (
    TaskStatus,
)
from portal.limits import SHORT_TEXT

pytestmark = pytest.mark.django_db


# --- My tasks ------------------------------------------------------------------------------------


def test_an_employee_completes_their_own_onboarding_task(cast, client):
    run = run_start(employee=cast.employee, kind="join", event_date=timezone.localdate(), acting_user=None)
    task = task_add(
        run=run,
        key="handbook",
        title="Read the handbook",
        assignee_type="employee",
        assignee=cast.employee,
        knowledge_url="https://kb.example.com/handbook",
    )
    client.force_login(cast.employee.user)
    page = client.get(reverse("offboarding:my_tasks")).content.decode()
    assert "Read the handbook" in page and "https://kb.example.com/handbook" in page
    client.force_login(cast.teammate.user)
    assert client.post(reverse("offboarding:task_done", args=[task.pk])).status_code == 404
    client.force_login(cast.employee.user)
    response = client.post(reverse("offboarding:task_done", args=[task.pk]), {"note": "Read it"}, follow=True)
    assert "Done: “Read the handbook”" in response.content.decode()
    task.refresh_from_db()
    assert task.status == TaskStatus.DONE and task.completed_by == cast.employee.user


def test_the_team_list_counts_each_reports_access_hardware_and_open_checklists(cast, laptop):
    from accounts.tests.factories import EntitlementFactory
    from offboarding.access import reports_for_manager

    EntitlementFactory(employee=cast.employee, application=cast.app)
    EntitlementFactory(employee=cast.employee, application=cast.owner_app)
    EntitlementFactory(employee=cast.employee, application=cast.other_app, status="revoked", revoked_at=timezone.now())
    run_start(employee=cast.employee, kind="join", event_date=timezone.localdate(), acting_user=None)
    rows = {e.pk: (e.access_count, e.hardware_count, e.open_runs) for e in reports_for_manager(cast.manager.user)}
    assert rows == {cast.employee.pk: (2, 1, 1), cast.teammate.pk: (0, 0, 0)}


def test_a_task_note_that_is_too_long_is_refused_and_the_task_stays_open(cast, client):
    run = run_start(employee=cast.employee, kind="join", event_date=timezone.localdate(), acting_user=None)
    task = task_add(run=run, key="badge", title="Collect your badge", assignee_type="employee", assignee=cast.employee)
    client.force_login(cast.employee.user)
    response = client.post(
        reverse("offboarding:task_done", args=[task.pk]), {"note": "x" * (SHORT_TEXT + 1)}, follow=True
    )
    assert f"is not marked done: The note is too long: at most {SHORT_TEXT} characters" in response.content.decode()
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING and task.note == ""


def test_the_team_page_says_what_blocks_a_reports_checklist(cast, client, django_capture_on_commit_callbacks):
    """A task failed for good shows on the manager's view of the run: "blocked by <task>: <error>"."""
    from offboarding.models import Assignee
    from offboarding.tests.actions import failures_left
    from offboarding.tests.factories import one_task_template, start

    one_task_template(key="revoke", title="Revoke Corporate Directory", action="test_flaky", max_attempts=1)
    one_task_template(key="notes", title="Collect notes", action="", assignee=Assignee.MANAGER)
    failures_left["revoke"] = 1
    with django_capture_on_commit_callbacks(execute=True):
        run = start(cast.employee)
    assert run.tasks.get(key__endswith=":revoke").status == TaskStatus.FAILED
    client.force_login(cast.manager.user)
    url = reverse("offboarding:team_member", args=[cast.employee.pk])
    page = client.get(url).content.decode()
    assert "0 of 2 tasks done" in page
    assert "Blocked by Revoke Corporate Directory: ConnectionError: target unavailable for revoke." in page

    task = run.tasks.get(key__endswith=":revoke")
    from offboarding import engine

    engine.task_skip(task=task, acting_user=None, reason="Removed by hand.")
    page = client.get(url).content.decode()
    assert "Blocked by" not in page and "1 of 2 tasks done" in page
