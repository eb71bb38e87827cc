"""The demo really provisions: its SCIM and webhook applications reach the demo's target systems.

`demo.targets.DemoTargets` is what `manage.py demo_targets` (started by `manage.py serve`, so by
`make run`) runs: scim2-server's service provider with one tenant per SCIM application, and the
webhook receiver. Here they are started in the test process on free ports (the demo applications
are pointed at them, as they are when `make run` uses another PORT), and a real qcluster worker
runs a newcomer's join run, an access request approved by their manager, and their leave run,
as after `make run`. What the target systems hold is counted on them, not on Portal's side.
"""

import datetime
import io
import os
import socket

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.connectors.scim import forget_discovery
from accounts.models import (
    AccessRequestStatus,
    Application,
    ApprovalStep,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementStatus,
    Role,
)
from accounts.services.access_requests import access_request_create
from accounts.services.approval_steps import approval_step_decide
from accounts.services.employees import employee_create
from demo.targets import SCIM_TOKEN, DemoTargets, TargetsNotStarted, scim_applications, target_ports, tenant_of
from offboarding import engine
from offboarding.flows.joiner import joiner_start
from offboarding.flows.leaver import employee_terminate
from offboarding.models import Assignee, ChecklistRun, RunStatus, Task, TaskStatus
from portal.testing.worker import (
    Deadlines,
    QCluster,
    WorkerError,
    enqueue_to,
    shareable_database_reason,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The software engineer's birthrights that the demo serves on its SCIM target (see demo.access).
SCIM_BIRTHRIGHTS = {"Corporate Directory": "user", "Slack": "member", "Zoom": "licensed", "1Password": "member"}


@pytest.fixture
def demo_company():
    reason = shareable_database_reason(connection.settings_dict)
    if reason:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI must run this test: {reason}")
        pytest.skip(reason)
    call_command("seed_demo", "--quiet-logins", stdout=io.StringIO())


@pytest.fixture
def targets(demo_company):
    forget_discovery()
    with DemoTargets(0, 0) as running:  # free ports: the demo applications are pointed at them
        yield running
    forget_discovery()


@pytest.fixture
def worker(targets, settings, tmp_path, worker_settings_module):
    deadlines = Deadlines()
    settings.LIFECYCLE = deadlines.lifecycle(settings.LIFECYCLE)
    cluster = QCluster(
        name=f"portal_demo_{os.getpid()}",
        database=connection.settings_dict,
        settings_module=worker_settings_module,
        redis_url=settings.REDIS_URL,
        deadlines=deadlines,
        log_path=tmp_path / "qcluster.log",
    )
    with cluster, enqueue_to(cluster):
        yield cluster
    print(f"--- qcluster log ---\n{cluster.log_tail(40)}")


def _quiet(run) -> bool:
    """Nothing of the run is queued or running, and no automated task of it is due."""
    if Task.objects.filter(run=run, status__in=[TaskStatus.QUEUED, TaskStatus.RUNNING]).exists():
        return False
    return not engine.runnable_tasks(run=run).filter(assignee_type=Assignee.SYSTEM).exists()


def _wait(predicate, *, run, worker, timeout: float = 120) -> None:
    """Poll `predicate`, sweeping as the scheduler would; on timeout, say where `run` stands."""
    try:
        wait_for(predicate, timeout=timeout, every=engine.sweep)
    except WorkerError:
        runs = ChecklistRun.objects.filter(employee=run.employee_id).order_by("pk")
        where = "\n".join(f"{r} [{r.status}]: {_tasks(r)}" for r in runs)
        pytest.fail(f"Not done within {timeout}s.\n{where}\n{worker.log_tail()}")


def _tasks(run) -> str:
    return "; ".join(f"{t.title} [{t.status}] {t.last_error or ''}".strip() for t in run.tasks.order_by("pk"))


def test_a_newcomer_joins_gets_access_approved_and_leaves_on_the_demo_targets(targets, worker):
    scim, hook = targets.scim, targets.webhook
    itadmin = get_user_model().objects.get(username="itadmin")
    manager = Employee.objects.get(user__username="manager")
    before = {name: scim.counts(tenant=tenant_of(Application.objects.get(name=name))) for name in SCIM_BIRTHRIGHTS}

    # Joiner: IT adds a software engineer who starts today (what the admin's "Add employee" calls).
    newcomer = employee_create(
        employee=Employee(
            employee_number="P19001",
            first_name="Nora",
            last_name="Newcomer",
            work_email="nora.newcomer@helix.example",
            title="Software Engineer",
            department=manager.department,
            location=manager.location,
            manager=manager,
            role=Role.objects.get(code="software-engineer"),
            # A join run takes effect at 09:00 on the start date: a start date nine hours back is
            # today after 09:00 and yesterday before it, so the run is due now whatever the hour.
            start_date=(timezone.localtime() - datetime.timedelta(hours=9)).date(),
        ),
        acting_user=itadmin,
        via="admin",
    )
    join = joiner_start(employee=newcomer, acting_user=itadmin)
    automated = Entitlement.objects.filter(employee=newcomer, application__name__in=SCIM_BIRTHRIGHTS)
    _wait(
        lambda: _quiet(join) and automated.filter(status=EntitlementStatus.ACTIVE).count() == len(SCIM_BIRTHRIGHTS),
        run=join,
        worker=worker,
    )
    assert not join.tasks.filter(status=TaskStatus.FAILED).exists(), _tasks(join)
    assert not join.tasks.filter(assignee_type=Assignee.SYSTEM, status=TaskStatus.PENDING, due_at__lte=timezone.now())
    newcomer.refresh_from_db()
    assert newcomer.status == EmployeeStatus.ACTIVE
    for name, level in SCIM_BIRTHRIGHTS.items():
        application = Application.objects.get(name=name)
        tenant = tenant_of(application)
        user = scim.user(newcomer.work_email, tenant=tenant)
        assert user is not None, f"no account for the newcomer on {name}'s SCIM target"
        assert (user["active"], user["externalId"]) == (True, "P19001")
        entitlement = automated.get(application=application)
        assert entitlement.external_id == user["id"], "Portal keeps the target's user id"
        group = application.connector_config["groups"].get(level)
        if group:
            assert user["id"] in scim.members(group, tenant=tenant), f"not in {group} on {name}"
        created = scim.effects(tenant=tenant, method="POST", resource="Users")
        assert len([c for c in created if c.json["userName"] == newcomer.work_email]) == 1, f"{name}: one create"
        assert scim.counts(tenant=tenant)["refused"] == before[name]["refused"], f"{name} refused a call"

    # Approval: the newcomer asks for Figma (manager approval), the manager approves, the worker provisions.
    figma = Application.objects.get(name="Figma")
    request = access_request_create(
        employee=newcomer,
        application=figma,
        level="editor",
        justification="Reviewing the onboarding flow designs.",
        acting_user=newcomer.user or itadmin,
    )
    step = ApprovalStep.objects.get(request=request, status="pending")
    assert step.approver == manager
    approval_step_decide(step=step, acting_user=manager.user, approve=True)
    request.refresh_from_db()
    assert request.status == AccessRequestStatus.APPROVED
    _wait(
        lambda: Entitlement.objects.filter(employee=newcomer, application=figma, status="active").exists(),
        run=join,
        worker=worker,
    )
    user = scim.user(newcomer.work_email, tenant="figma")
    assert user["active"] is True
    assert user["id"] in scim.members("figma editor", tenant="figma")
    held = [*SCIM_BIRTHRIGHTS, "Figma"]

    # Leaver: IT terminates the newcomer at once; the worker deactivates every SCIM account.
    writes_before = {
        name: scim.counts(tenant=tenant_of(Application.objects.get(name=name)))["applied"] for name in held
    }
    leave = employee_terminate(
        employee=newcomer, last_day=timezone.localdate(), acting_user=itadmin, immediate=True, reason="Left."
    )
    _wait(
        lambda: (
            _quiet(leave)
            and not Entitlement.objects.filter(employee=newcomer, application__name__in=held)
            .exclude(status=EntitlementStatus.REVOKED)
            .exists()
        ),
        run=leave,
        worker=worker,
    )
    assert not leave.tasks.filter(status=TaskStatus.FAILED).exists(), _tasks(leave)
    for name in held:
        application = Application.objects.get(name=name)
        tenant = tenant_of(application)
        user = scim.user(newcomer.work_email, tenant=tenant)
        assert user["active"] is False, f"the newcomer's {name} account is still active"
        for group in (application.connector_config.get("groups") or {}).values():
            assert user["id"] not in scim.members(group, tenant=tenant), f"still in {group} on {name}"
        # A revocation is two writes where the level has a group (out of it, then inactive), else one.
        applied = scim.counts(tenant=tenant)["applied"] - writes_before[name]
        in_group = _level(newcomer, name) in (application.connector_config.get("groups") or {})
        assert applied == (2 if in_group else 1), f"{name}: {applied} writes for one revocation"

    # What is left is for people: IT's tasks on the manual applications and the hardware to return.
    left = leave.tasks.exclude(status__in=[TaskStatus.DONE, TaskStatus.SKIPPED])
    assert not left.filter(assignee_type=Assignee.SYSTEM, due_at__lte=timezone.now()).exists(), _tasks(leave)
    assert hook.counts()["refused"] == 0
    assert ChecklistRun.objects.get(pk=leave.pk).status in (RunStatus.RUNNING, RunStatus.DONE)


def _level(employee, application_name) -> str:
    return Entitlement.objects.filter(employee=employee, application__name=application_name).latest("pk").level


def test_the_targets_point_the_demo_at_their_ports_and_hold_its_accounts(targets):
    apps = list(scim_applications())
    assert {a.name for a in apps} == {*SCIM_BIRTHRIGHTS, "Figma", "Miro"}
    for application in apps:
        assert application.connector_config["url"] == targets.scim.url(tenant_of(application))
        assert application.connector_config["token"] == SCIM_TOKEN
    assert Application.objects.get(name="Helix Ops Console").connector_config["url"] == targets.webhook.url
    assert sorted(targets.repointed) == sorted([*(a.name for a in apps), "Helix Ops Console"])
    history = Application.objects.get(name="Slack").history.first()
    assert "other ports" in history.history_change_reason

    # The accounts Portal says exist are on the target, with their level's group.
    slack = Application.objects.get(name="Slack")
    active = Entitlement.objects.filter(application=slack, status=EntitlementStatus.ACTIVE).select_related("employee")
    users = targets.scim.users(tenant="slack")
    assert len(users) == active.count() > 100
    admins = {e.employee.work_email for e in active if e.level == "admin"}
    assert {users[email]["id"] for email in admins} == targets.scim.members("slack admin", tenant="slack")
    assert targets.scim.counts()["received"] == 0, "loading the accounts is not a call"

    # Started again on the same ports (the next `make run`): nothing to point, no history row.
    ports = targets.scim.port, targets.webhook.port
    history_rows = Application.history.count()
    targets.stop()
    with DemoTargets(*ports) as again:
        assert again.repointed == []
        assert len(again.scim.users(tenant="slack")) == len(users)
    assert Application.history.count() == history_rows


def test_a_taken_port_is_refused_in_plain_words():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TargetsNotStarted, match=rf"cannot listen on 127.0.0.1:{port}.*choose another PORT"):
            DemoTargets(port, 0).start()


def test_the_ports_follow_the_web_port_unless_the_environment_says_otherwise():
    assert target_ports(8000, {}) == (8001, 8002)
    assert target_ports(8100, {}) == (8101, 8102)
    assert target_ports(8100, {"PORTAL_DEMO_SCIM_PORT": "9001", "PORTAL_DEMO_WEBHOOK_PORT": " "}) == (9001, 8102)
    with pytest.raises(TargetsNotStarted, match="PORTAL_DEMO_WEBHOOK_PORT must be a port number"):
        target_ports(8000, {"PORTAL_DEMO_WEBHOOK_PORT": "80a"})
    with pytest.raises(TargetsNotStarted, match="PORTAL_DEMO_SCIM_PORT"):
        target_ports(8000, {"PORTAL_DEMO_SCIM_PORT": "70000"})
