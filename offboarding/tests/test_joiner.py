"""Joiner: birthright access through connectors, hardware kit from stock or a purchase task,
welcome emails by role and department on a schedule, onboarding tasks, activation on day one."""

import datetime

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import ConnectorType, EmployeeStatus, EntitlementSource, EntitlementStatus, RoleApplication
from accounts.tests.factories import (
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    RoleFactory,
    UserFactory,
)
from assets.models import AssetCategory, AssetStatus, RoleKitItem
from assets.tests.factories import AssetModelFactory, HardwareAssetFactory
from offboarding import engine
from offboarding.actions import registry
from offboarding.flows.joiner import joiner_start
from offboarding.models import Assignee, ChecklistKind, ChecklistRun, RunStatus, Task, TaskStatus
from offboarding.tests.factories import lifecycle_templates
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    role = RoleFactory(name="Software Engineer", code="software-engineer", description="Builds the platform.")
    slack = ApplicationFactory(
        name="Slack", connector=ConnectorType.MANUAL, knowledge_base_url="https://kb.example.com/slack"
    )
    github = ApplicationFactory(name="GitHub", connector=ConnectorType.MANUAL)
    RoleApplication.objects.create(role=role, application=slack, access_level="user")
    RoleApplication.objects.create(role=role, application=github, access_level="admin")
    laptop = AssetModelFactory(manufacturer="Apple", name="MacBook Pro 14")
    monitor = AssetModelFactory(manufacturer="Dell", name="U2723QE", category=AssetCategory.MONITOR)
    RoleKitItem.objects.create(role=role, asset_model=laptop, quantity=1)
    RoleKitItem.objects.create(role=role, asset_model=monitor, quantity=1)
    department = DepartmentFactory(name="Platform Engineering")
    manager = EmployeeFactory(first_name="Morgan", last_name="Manager", work_email="morgan@example.com")
    lifecycle_templates()
    return {
        "role": role,
        "department": department,
        "manager": manager,
        "laptop": laptop,
        "monitor": monitor,
        "apps": (slack, github),
    }


def joiner(org, *, days_ahead=10, **kwargs):
    defaults = {
        "first_name": "Jo",
        "last_name": "Newcomer",
        "personal_email": "jo.private@example.net",
        "role": org["role"],
        "department": org["department"],
        "manager": org["manager"],
        "status": EmployeeStatus.PRE_HIRE,
        "start_date": timezone.localdate() + datetime.timedelta(days=days_ahead),
    }
    return EmployeeFactory(**{**defaults, **kwargs})


def at(run, days, minutes=1):
    """A moment relative to the run's effective time (the start date, 09:00)."""
    return run.effective_at + datetime.timedelta(days=days, minutes=minutes)


def by_key(run, key) -> Task:
    return run.tasks.get(key__endswith=f":{key}")


def test_joiner_end_to_end_with_a_manual_connector(settle, org):
    it_user = UserFactory(username="it-person")
    laptop = HardwareAssetFactory(model=org["laptop"], asset_tag="LT-1")
    employee = joiner(org)

    run = settle(func=joiner_start, employee=employee, acting_user=it_user)
    assert run.kind == ChecklistKind.JOIN and run.effective_at.date() == employee.start_date

    # Kit reserved now (21 days ahead is past); the monitor has no stock: a purchase task for IT.
    laptop.refresh_from_db()
    assert laptop.reserved_for == employee and laptop.status == AssetStatus.IN_STOCK
    purchase = run.tasks.get(key=f"purchase:{RoleKitItem.objects.get(asset_model=org['monitor']).pk}")
    assert purchase.assignee_type == Assignee.IT and purchase.status == TaskStatus.PENDING
    assert "Dell U2723QE" in purchase.title
    assert employee.entitlements.count() == 0  # provisioning waits until 3 days before
    assert mail.outbox == []

    # Three days before day one: access planned and handed to IT (manual connector); emails go out.
    settle(func=engine.sweep, now=at(run, -3))
    entitlements = {e.application.name: e for e in employee.entitlements.select_related("application")}
    assert set(entitlements) == {"Slack", "GitHub"}
    assert {e.status for e in entitlements.values()} == {EntitlementStatus.PENDING}
    assert {e.source for e in entitlements.values()} == {EntitlementSource.BIRTHRIGHT}
    children = list(run.tasks.filter(action="provision_entitlement"))
    assert len(children) == 2
    for child in children:
        assert child.status == TaskStatus.PENDING and child.assignee_type == Assignee.IT
        assert "Create an account for" in child.instructions
    assert by_key(run, "provision-access").status == TaskStatus.DONE
    welcome = [m for m in mail.outbox if m.to == ["jo.private@example.net"]]
    assert len(welcome) == 1
    assert "Platform Engineering" in welcome[0].subject
    assert "Software Engineer" in welcome[0].body and "Platform Engineering" in welcome[0].body
    assert "MacBook Pro 14" in welcome[0].body  # the reserved kit
    briefing = [m for m in mail.outbox if m.to == ["morgan@example.com"]]
    assert len(briefing) == 1 and "Software Engineer" in briefing[0].subject
    assert "Prepare the first week" in briefing[0].body

    # IT does the manual work and completes the tasks: the entitlements become active.
    for child in children:
        settle(func=engine.task_complete, task=child, acting_user=it_user, note="Done by hand.")
    assert {e.status for e in employee.entitlements.all()} == {EntitlementStatus.ACTIVE}
    assert employee.entitlements.get(application__name="GitHub").level == "admin"

    # Day one: activated, welcome on the work address with the applications and their KB links.
    mail.outbox.clear()
    settle(func=engine.sweep, now=at(run, 0))
    employee.refresh_from_db()
    assert employee.status == EmployeeStatus.ACTIVE
    (day_one,) = mail.outbox
    assert day_one.to == [employee.work_email]
    assert "Software Engineer" in day_one.subject and "Platform Engineering" in day_one.subject
    assert "https://kb.example.com/slack" in day_one.body
    assert "Complete the security awareness training" in day_one.body
    assert "https://kb.example.com/security/awareness-training" in day_one.body

    # End of week one.
    mail.outbox.clear()
    settle(func=engine.sweep, now=at(run, 4))
    (week_one,) = mail.outbox
    assert "Platform Engineering" in week_one.subject and "Software Engineer" in week_one.body

    # People finish their tasks; the run closes with its figure.
    for task in run.tasks.exclude(assignee_type=Assignee.SYSTEM).filter(status=TaskStatus.PENDING):
        settle(func=engine.task_complete, task=task, acting_user=it_user)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert run.time_to_provision is not None


def test_manager_and_employee_tasks_are_assigned_with_knowledge_links(settle, org):
    employee = joiner(org)
    run = settle(func=joiner_start, employee=employee, acting_user=None)
    prepare = by_key(run, "prepare-first-week")
    assert prepare.assignee_type == Assignee.MANAGER and prepare.assignee == org["manager"]
    assert prepare.knowledge_url.startswith("https://")
    training = by_key(run, "security-training")
    assert training.assignee_type == Assignee.EMPLOYEE and training.assignee == employee
    assert training.knowledge_url.startswith("https://")
    assert training.due_at == run.effective_at + datetime.timedelta(days=4)


def test_role_specific_template_adds_its_tasks(settle, org):
    run = settle(func=joiner_start, employee=joiner(org), acting_user=None)
    assert run.tasks.filter(title="Set up the development environment").exists()
    assert not run.tasks.filter(title="Complete the CRM training").exists()


def test_kit_goes_to_the_first_joiner_and_the_second_gets_a_purchase_task(settle, org):
    HardwareAssetFactory(model=org["laptop"], asset_tag="LT-1")
    HardwareAssetFactory(model=org["monitor"], asset_tag="MON-1")
    first = settle(func=joiner_start, employee=joiner(org, employee_number="J1"), acting_user=None)
    second = settle(func=joiner_start, employee=joiner(org, employee_number="J2"), acting_user=None)
    assert set(first.employee.reserved_hardware.values_list("asset_tag", flat=True)) == {"LT-1", "MON-1"}
    assert not first.tasks.filter(key__startswith="purchase:").exists()
    assert second.employee.reserved_hardware.count() == 0
    assert second.tasks.filter(key__startswith="purchase:", assignee_type=Assignee.IT).count() == 2


def test_kit_is_reserved_through_the_asset_service_with_history_and_audit(settle, org):
    laptop = HardwareAssetFactory(model=org["laptop"], asset_tag="LT-1")
    employee = joiner(org)
    run = settle(func=joiner_start, employee=employee, acting_user=None)
    laptop.refresh_from_db()
    assert laptop.reserved_for == employee
    latest = laptop.history.first()
    assert (latest.history_type, latest.reserved_for_id, latest.history_user) == ("~", employee.pk, None)
    event = AuditEvent.objects.get(action=AuditEvent.Action.ASSET_RESERVED, target_id=str(laptop.pk))
    assert event.detail == {"run": run.pk, "employee": employee.pk}
    assert event.actor_repr == "system"


def test_every_joiner_action_run_twice_has_its_effect_once(settle, org):
    HardwareAssetFactory(model=org["laptop"], asset_tag="LT-1")
    HardwareAssetFactory(model=org["laptop"], asset_tag="LT-2")
    employee = joiner(org, days_ahead=2)  # everything before day one is due now
    run = settle(func=joiner_start, employee=employee, acting_user=None)
    sent = len(mail.outbox)
    assert sent == 2  # manager briefing and the welcome before day one

    for key in ("reserve-kit", "provision-access", "welcome-before", "manager-briefing"):
        task = Task.objects.get(pk=by_key(run, key).pk)
        registry[task.action].func(task)
        registry[task.action].func(task)
    assert employee.reserved_hardware.count() == 1  # the kit has one laptop; LT-2 stays free
    assert employee.entitlements.count() == 2
    assert run.tasks.filter(action="provision_entitlement").count() == 2
    assert run.tasks.filter(key__startswith="purchase:").count() == 1
    assert len(mail.outbox) == sent

    activate = Task.objects.get(pk=by_key(run, "activate").pk)
    assert registry["activate_employee"].func(activate) == {"status": EmployeeStatus.ACTIVE, "changed": True}
    assert registry["activate_employee"].func(activate)["changed"] is False


def test_fan_out_children_hold_back_the_tasks_that_wait_for_their_parent(settle, org):
    employee = joiner(org, days_ahead=2)
    run = settle(func=joiner_start, employee=employee, acting_user=None)
    parent = by_key(run, "provision-access")
    downstream = engine.task_add(
        run=run, key="after-access", title="After access", action="noop", depends_on=[parent], due_at=run.created_at
    )
    task = Task.objects.get(pk=parent.pk)
    registry["provision_birthrights"].func(task)  # fanning out again adds the children to `downstream`
    children = set(run.tasks.filter(action="provision_entitlement"))
    assert children and children <= set(downstream.depends_on.all())
    assert not engine.runnable_tasks(run=run).filter(pk=downstream.pk).exists()


def test_joiner_start_is_idempotent_and_refused_for_a_terminated_employee(settle, org):
    employee = joiner(org)
    run = settle(func=joiner_start, employee=employee, acting_user=None)
    assert settle(func=joiner_start, employee=employee, acting_user=None) == run
    assert ChecklistRun.objects.filter(employee=employee, kind=ChecklistKind.JOIN).count() == 1

    gone = joiner(org, employee_number="GONE1", status=EmployeeStatus.TERMINATED)
    with pytest.raises(ValidationError, match="terminated"):
        joiner_start(employee=gone, acting_user=None)


def test_core_steps_are_added_when_no_template_applies(settle, org):
    from offboarding.models import ChecklistTemplate

    ChecklistTemplate.objects.all().delete()
    HardwareAssetFactory(model=org["laptop"])
    employee = joiner(org, days_ahead=1)
    run = settle(func=joiner_start, employee=employee, acting_user=None)
    assert set(run.tasks.filter(parent__isnull=True).values_list("action", flat=True)) == {
        "reserve_kit",
        "provision_birthrights",
        "activate_employee",
    }
    assert employee.reserved_hardware.count() == 1
    assert employee.entitlements.count() == 2


def test_welcome_before_day_one_is_not_sent_after_the_start(settle, org):
    employee = joiner(org, days_ahead=-1)  # entered late: the start date has passed
    run = settle(func=joiner_start, employee=employee, acting_user=None)
    task = by_key(run, "welcome-before")
    assert task.status == TaskStatus.DONE
    assert "already passed" in task.result["note"]
    assert not [m for m in mail.outbox if m.to == ["jo.private@example.net"]]


def test_no_personal_address_hands_the_welcome_to_it(settle, org):
    employee = joiner(org, days_ahead=2, personal_email="")
    run = settle(func=joiner_start, employee=employee, acting_user=None)
    task = by_key(run, "welcome-before")
    assert task.status == TaskStatus.PENDING and task.assignee_type == Assignee.IT
    assert "No personal email address" in task.instructions
