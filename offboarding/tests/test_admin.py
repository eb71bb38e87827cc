"""The lifecycle admin: runs and tasks for IT to watch and unblock, in constant queries.

Retry, skip and mark-done go through the services, with a reason or note asked for on an
intermediate page; helpdesk may use them, auditors may not.
"""

import datetime

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import EmployeeFactory, UserFactory
from assets.services import asset_check_out
from assets.tests.factories import HardwareAssetFactory
from offboarding import engine
from offboarding.admin.checklists import format_duration
from offboarding.models import (
    Assignee,
    ChecklistKind,
    ChecklistRun,
    ChecklistTemplate,
    HardwareReturn,
    ReturnStatus,
    RunStatus,
    Task,
    TaskStatus,
    TaskTemplate,
)
from offboarding.tests.actions import failures_left
from offboarding.tests.factories import start
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


TASKS = reverse("admin:offboarding_task_changelist")
RUNS = reverse("admin:offboarding_checklistrun_changelist")
RETURNS = reverse("admin:offboarding_hardwarereturn_changelist")
TEMPLATES = reverse("admin:offboarding_checklisttemplate_changelist")


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def leaver_template():
    """Leave: an automated revoke (fails as told), a manual badge collection after it, a manual laptop task."""
    template = ChecklistTemplate.objects.create(name="Leaver", kind=ChecklistKind.LEAVE)
    revoke = TaskTemplate.objects.create(
        checklist=template,
        key="revoke",
        title="Revoke access",
        assignee=Assignee.SYSTEM,
        action="test_flaky",
        max_attempts=1,
    )
    badge = TaskTemplate.objects.create(
        checklist=template, key="badge", title="Collect the badge", assignee=Assignee.IT, due_offset_days=1
    )
    badge.depends_on.add(revoke)
    TaskTemplate.objects.create(
        checklist=template, key="laptop", title="Wipe the laptop", assignee=Assignee.IT, due_offset_days=-2
    )
    return template


def leaver_run(django_capture_on_commit_callbacks, *, fail=True, manager=True):
    """A run whose revoke task failed (if `fail`), with the laptop task overdue."""
    failures_left["revoke"] = 1 if fail else 0
    employee = EmployeeFactory(manager=EmployeeFactory() if manager else None)
    with django_capture_on_commit_callbacks(execute=True):
        run = start(employee)
    # The laptop task was due two days ago: no task is created overdue, so time passes instead.
    then = timezone.now() - datetime.timedelta(days=2)
    run.tasks.filter(key__endswith=":laptop").update(due_at=then, created_at=then)
    return run


def task(run, key):
    return run.tasks.get(key__endswith=f":{key}")


def run_action(client, url, action, objects, **form):
    """Post the action as the changelist does, then its form with "apply", as the intermediate page does."""
    selected = [o.pk for o in objects]
    first = client.post(url, {"action": action, "_selected_action": selected, "index": 0})
    assert first.status_code == 200
    assert first.templates[0].name == "admin/portal/action_form.html"
    return client.post(url, {"action": action, "_selected_action": selected, "apply": "1", **form})


# --- Runs ----------------------------------------------------------------------------------------


def test_run_list_shows_progress_failures_overdue_and_figures(
    client, it_admin, leaver_template, django_capture_on_commit_callbacks
):
    run = leaver_run(django_capture_on_commit_callbacks)
    ChecklistRun.objects.filter(pk=run.pk).update(time_to_deprovision=datetime.timedelta(days=1, hours=3))
    client.force_login(it_admin)
    response = client.get(RUNS)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<span>0/3</span>" in page
    assert f"?run__id__exact={run.pk}&amp;status__exact=failed" in page
    assert "1 d 3 h" in page
    row = response.context["cl"].result_list[0]
    assert (row.total_tasks, row.finished_tasks, row.failed_tasks, row.overdue_tasks) == (3, 0, 1, 2)
    # The failed task blocks the run: said on the list and on the run's page, linking to the failures.
    blocked = "blocked by Revoke access: ConnectionError: target unavailable for revoke"
    assert f'status__exact=failed">{blocked}</a>' in page
    assert blocked in client.get(reverse("admin:offboarding_checklistrun_change", args=[run.pk])).content.decode()
    # Overdue reads as a warning, not as Django's green "yes" tick.
    assert 'class="portal-overdue"' in page and ">Overdue<" in page
    assert "icon-yes.svg" not in page


def test_run_filters_failed_and_overdue(client, it_admin, leaver_template, django_capture_on_commit_callbacks):
    failing = leaver_run(django_capture_on_commit_callbacks)
    fine = leaver_run(django_capture_on_commit_callbacks, fail=False)
    future = start(EmployeeFactory(), ChecklistKind.JOIN, effective_at=timezone.now() + datetime.timedelta(days=9))
    client.force_login(it_admin)

    def listed(query):
        return {r.pk for r in client.get(f"{RUNS}?{query}").context["cl"].result_list}

    assert listed("failed=yes") == {failing.pk}
    assert listed("failed=no") == {fine.pk, future.pk}
    assert listed("overdue=yes") == {failing.pk, fine.pk}  # both have the laptop task overdue
    assert listed("overdue=no") == {future.pk}
    on_time = client.get(f"{RUNS}?overdue=no").content.decode()
    assert 'class="portal-overdue"' not in on_time and "icon-no.svg" not in on_time
    assert listed(f"employee__id__exact={fine.employee_id}") == {fine.pk}


def test_run_page_shows_its_tasks_read_only_with_links(
    client, helpdesk, leaver_template, django_capture_on_commit_callbacks
):
    run = leaver_run(django_capture_on_commit_callbacks)
    client.force_login(helpdesk)
    response = client.get(reverse("admin:offboarding_checklistrun_change", args=[run.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    for t in run.tasks.all():
        assert reverse("admin:offboarding_task_change", args=[t.pk]) in page
    assert "target unavailable for revoke" in page
    assert 'name="_save"' not in page  # nothing to save: runs change through the services
    assert client.post(reverse("admin:offboarding_checklistrun_change", args=[run.pk]), {}).status_code == 403


def test_format_duration():
    assert format_duration(None) == "—"
    assert format_duration(datetime.timedelta(seconds=20)) == "under a minute"
    assert format_duration(datetime.timedelta(minutes=12)) == "12 min"
    assert format_duration(datetime.timedelta(hours=2, minutes=5)) == "2 h 5 min"
    assert format_duration(datetime.timedelta(hours=2)) == "2 h"
    assert format_duration(datetime.timedelta(days=3, hours=4, minutes=59)) == "3 d 4 h"
    assert format_duration(datetime.timedelta(days=3)) == "3 d"


def test_cancel_run_action_asks_for_a_reason(client, helpdesk, leaver_template, django_capture_on_commit_callbacks):
    run = leaver_run(django_capture_on_commit_callbacks)
    client.force_login(helpdesk)
    refused = run_action(client, RUNS, "cancel_runs", [run], reason="")
    assert refused.status_code == 200 and refused.context["form"].errors["reason"]
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    response = run_action(client, RUNS, "cancel_runs", [run], reason="Resignation withdrawn")
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert texts(response) == [f"Cancelled: {run}."]


# --- Tasks: retry, skip, mark done ---------------------------------------------------------------------


def test_helpdesk_retries_a_failed_task_with_a_reason(
    client, helpdesk, leaver_template, django_capture_on_commit_callbacks
):
    run = leaver_run(django_capture_on_commit_callbacks)
    revoke = task(run, "revoke")
    assert revoke.status == TaskStatus.FAILED
    client.force_login(helpdesk)
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(client, TASKS, "retry_tasks", [revoke], reason="Target back up")
    assert response.status_code == 302
    revoke.refresh_from_db()
    assert revoke.status == TaskStatus.DONE  # retried, ran, succeeded
    row = revoke.history.filter(note="Target back up").get()
    assert row.history_user == helpdesk
    assert texts(response) == [f"Sent back to the queue: Revoke access ({run.employee.full_name})."]


def test_retry_without_a_reason_is_refused(client, helpdesk, leaver_template, django_capture_on_commit_callbacks):
    revoke = task(leaver_run(django_capture_on_commit_callbacks), "revoke")
    client.force_login(helpdesk)
    response = run_action(client, TASKS, "retry_tasks", [revoke], reason="   ")
    assert response.status_code == 200
    assert "reason" in response.context["form"].errors
    revoke.refresh_from_db()
    assert revoke.status == TaskStatus.FAILED


def test_skip_reports_per_task_what_worked_and_why_not(
    client, helpdesk, leaver_template, django_capture_on_commit_callbacks
):
    run = leaver_run(django_capture_on_commit_callbacks)
    revoke, laptop = task(run, "revoke"), task(run, "laptop")
    engine.task_complete(task=laptop, acting_user=helpdesk)
    client.force_login(helpdesk)
    response = run_action(client, TASKS, "skip_tasks", [revoke, laptop], reason="No account there")
    revoke.refresh_from_db()
    assert (revoke.status, revoke.note, revoke.completed_by) == (TaskStatus.SKIPPED, "No account there", helpdesk)
    assert revoke.history.first().history_user == helpdesk
    name = run.employee.full_name
    assert texts(response) == [
        f"Skipped: Revoke access ({name}).",
        f"Wipe the laptop ({name}): “Wipe the laptop” is done; only a failed or pending task can be skipped.",
    ]
    assert AuditEvent.objects.filter(actor=helpdesk, action=AuditEvent.Action.TASK_SKIPPED).count() == 1


def test_mark_done_completes_manual_tasks_and_refuses_blocked_ones(
    client, it_admin, leaver_template, django_capture_on_commit_callbacks
):
    run = leaver_run(django_capture_on_commit_callbacks)
    badge, laptop = task(run, "badge"), task(run, "laptop")
    client.force_login(it_admin)
    response = run_action(client, TASKS, "complete_tasks", [badge, laptop], note="Wiped")
    laptop.refresh_from_db()
    badge.refresh_from_db()
    assert (laptop.status, laptop.completed_by, laptop.note) == (TaskStatus.DONE, it_admin, "Wiped")
    assert badge.status == TaskStatus.PENDING
    name = run.employee.full_name
    assert texts(response) == [
        f"Marked done: Wipe the laptop ({name}).",
        f"Collect the badge ({name}): “Collect the badge” waits for: Revoke access. Finish those first.",
    ]


def test_a_task_page_offers_the_buttons_that_apply_and_they_work(
    client, helpdesk, leaver_template, django_capture_on_commit_callbacks
):
    run = leaver_run(django_capture_on_commit_callbacks)
    revoke = task(run, "revoke")
    client.force_login(helpdesk)
    page = client.get(reverse("admin:offboarding_task_change", args=[revoke.pk]))
    assert page.status_code == 200
    assert [label for _, label in page.context["task_verbs"]] == ["Retry", "Skip"]
    assert "target unavailable for revoke" in page.content.decode()
    revoke.refresh_from_db()
    assert "Failure alerted at" in page.content.decode() and revoke.failure_alerted_at is not None
    assert 'name="_save"' not in page.content.decode()
    skip_url = reverse("admin:offboarding_task_skip", args=[revoke.pk])
    assert client.get(skip_url).status_code == 200
    assert client.post(skip_url, {"apply": "1", "reason": ""}).status_code == 200  # reason required
    response = client.post(skip_url, {"apply": "1", "reason": "Done by hand"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:offboarding_task_change", args=[revoke.pk])
    revoke.refresh_from_db()
    assert (revoke.status, revoke.note) == (TaskStatus.SKIPPED, "Done by hand")
    laptop = task(run, "laptop")
    verbs = client.get(reverse("admin:offboarding_task_change", args=[laptop.pk])).context["task_verbs"]
    assert [label for _, label in verbs] == ["Skip", "Mark done"]


def test_a_task_page_cannot_be_saved_directly(client, it_admin, leaver_template, django_capture_on_commit_callbacks):
    laptop = task(leaver_run(django_capture_on_commit_callbacks), "laptop")
    client.force_login(it_admin)
    response = client.post(reverse("admin:offboarding_task_change", args=[laptop.pk]), {"status": "done"})
    assert response.status_code == 403
    laptop.refresh_from_db()
    assert laptop.status == TaskStatus.PENDING


def test_auditor_sees_tasks_but_gets_no_actions_and_no_buttons(
    client, auditor, leaver_template, django_capture_on_commit_callbacks
):
    revoke = task(leaver_run(django_capture_on_commit_callbacks), "revoke")
    client.force_login(auditor)
    response = client.get(TASKS)
    assert response.status_code == 200 and response.context["action_form"] is None
    page = client.get(reverse("admin:offboarding_task_change", args=[revoke.pk]))
    assert page.status_code == 200 and page.context["task_verbs"] == []
    for verb in ("retry", "skip", "complete"):
        url = reverse(f"admin:offboarding_task_{verb}", args=[revoke.pk])
        assert client.get(url).status_code == 403
        assert client.post(url, {"apply": "1", "reason": "x", "note": "x"}).status_code == 403
    client.post(TASKS, {"action": "skip_tasks", "_selected_action": [revoke.pk], "apply": "1", "reason": "x"})
    revoke.refresh_from_db()
    assert revoke.status == TaskStatus.FAILED


def test_task_filters(client, it_admin, leaver_template, django_capture_on_commit_callbacks):
    run = leaver_run(django_capture_on_commit_callbacks)
    client.force_login(it_admin)

    def listed(query):
        return {t.key.split(":")[1] for t in client.get(f"{TASKS}?{query}").context["cl"].result_list}

    assert listed("status__exact=failed") == {"revoke"}
    assert listed("overdue=yes") == {"revoke", "laptop"}
    assert listed("overdue=no") == {"badge"}
    assert listed("assignee_type__exact=it") == {"badge", "laptop"}
    assert listed(f"run__id__exact={run.pk}&action=test_flaky") == {"revoke"}


# --- Query counts -------------------------------------------------------------------------------------


def _make_runs(n, django_capture_on_commit_callbacks):
    for _ in range(n):
        run = leaver_run(django_capture_on_commit_callbacks)
        engine.run_record_revocation(run=run)
        task(run, "laptop").assignee = run.employee  # shown columns have their relations filled
        Task.objects.filter(pk=task(run, "laptop").pk).update(assignee=run.employee.manager)


def _make_returns(n, user):
    for _ in range(n):
        employee = EmployeeFactory()
        asset = HardwareAssetFactory()
        asset_check_out(asset=asset, employee=employee, acting_user=user)
        run = start(employee, effective_at=timezone.now() + datetime.timedelta(days=1))
        HardwareReturn.objects.create(
            run=run,
            employee=employee,
            asset=asset,
            due_date=datetime.date(2030, 1, 1),
            status="received",
            received_at=timezone.now(),
            received_by=UserFactory(),
        )


def _count(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries), response


@pytest.mark.parametrize("url", [RUNS, TASKS, RETURNS, TEMPLATES])
def test_changelist_query_count_does_not_grow_with_rows(
    client, it_admin, url, leaver_template, django_capture_on_commit_callbacks, django_assert_num_queries
):
    client.force_login(it_admin)
    client.get(url)  # warm per-process caches

    def make(n):
        if url == RETURNS:
            _make_returns(n, it_admin)
        elif url == TEMPLATES:
            for i in range(n):
                template = ChecklistTemplate.objects.create(
                    name=f"T{ChecklistTemplate.objects.count()}-{i}", kind="join"
                )
                TaskTemplate.objects.create(checklist=template, key="k", title="K")
        else:
            _make_runs(n, django_capture_on_commit_callbacks)

    make(2)
    at_2, response = _count(client, url)
    make(6)
    with django_assert_num_queries(at_2):
        response = client.get(url)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) >= 8


def test_run_page_query_count_does_not_grow_with_tasks(
    client, it_admin, django_capture_on_commit_callbacks, django_assert_num_queries
):
    run = start(EmployeeFactory(manager=EmployeeFactory()), effective_at=timezone.now() + datetime.timedelta(days=1))
    url = reverse("admin:offboarding_checklistrun_change", args=[run.pk])
    client.force_login(it_admin)

    def add(n):
        base = run.tasks.count()
        for i in range(n):
            engine.task_add(
                run=run,
                key=f"t{base + i}",
                title=f"T{base + i}",
                assignee_type=Assignee.MANAGER,
                due_at=run.effective_at,
            )

    client.get(url)
    add(2)
    at_2, _ = _count(client, url)
    add(8)
    with django_assert_num_queries(at_2):
        assert client.get(url).status_code == 200


# --- Hardware returns -----------------------------------------------------------------------------------


def test_hardware_return_list_and_page(client, helpdesk):
    _make_returns(1, helpdesk)
    hardware_return = HardwareReturn.objects.get()
    client.force_login(helpdesk)
    response = client.get(RETURNS)
    assert response.status_code == 200
    assert hardware_return.asset.asset_tag in response.content.decode()
    assert list(client.get(f"{RETURNS}?overdue=yes").context["cl"].result_list) == []
    page = client.get(reverse("admin:offboarding_hardwarereturn_change", args=[hardware_return.pk]))
    assert page.status_code == 200


def _open_return(it_admin):
    employee = EmployeeFactory()
    asset = HardwareAssetFactory()
    asset_check_out(asset=asset, employee=employee, acting_user=it_admin)
    asset.refresh_from_db()
    item = HardwareReturn.objects.create(employee=employee, asset=asset, due_date=timezone.localdate())
    return item, asset


def test_it_marks_a_return_received_and_a_damaged_asset_goes_to_repair(client, it_admin):
    item, asset = _open_return(it_admin)
    client.force_login(it_admin)
    changelist = reverse("admin:offboarding_hardwarereturn_changelist")
    form = client.post(changelist, {"action": "receive_returns", "_selected_action": [item.pk]})
    assert form.status_code == 200 and "Mark received" in form.content.decode()

    done = client.post(
        changelist,
        {"action": "receive_returns", "_selected_action": [item.pk], "apply": "1", "condition": "damaged", "note": ""},
    )

    assert done.status_code == 302
    item.refresh_from_db()
    asset.refresh_from_db()
    assert (item.status, item.condition, item.received_by) == (ReturnStatus.RECEIVED, "damaged", it_admin)
    assert (asset.status, asset.assigned_to) == ("in_repair", None)
    again = client.post(
        changelist,
        {"action": "receive_returns", "_selected_action": [item.pk], "apply": "1", "condition": "good"},
        follow=True,
    )
    assert any(str(item) in m and "received" in m.lower() for m in texts(again))
    asset.refresh_from_db()
    assert asset.status == "in_repair"  # the second receive changed nothing


def test_auditor_cannot_mark_a_return_received(client, auditor, it_admin):
    item, _ = _open_return(it_admin)
    client.force_login(auditor)
    response = client.post(
        reverse("admin:offboarding_hardwarereturn_changelist"),
        {"action": "receive_returns", "_selected_action": [item.pk], "apply": "1", "condition": "good"},
    )
    item.refresh_from_db()
    assert item.status == ReturnStatus.OPEN
    assert response.status_code in (200, 302, 403)
