"""`flows.imports.joiners_start` (an HR import's join runs in bulk) gives what `joiner_start` gives, field by field."""

import datetime

import pytest
from django.utils import timezone

from accounts.tests.factories import DepartmentFactory, EmployeeFactory, LocationFactory, RoleFactory
from offboarding.flows import joiner
from offboarding.flows.imports import joiners_start
from offboarding.models import Assignee, ChecklistKind, ChecklistRun
from offboarding.tests.factories import ChecklistTemplateFactory, TaskTemplateFactory
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def snapshot(run: ChecklistRun) -> dict:
    tasks = {}
    for task in run.tasks.prefetch_related("depends_on").select_related("template"):
        tasks[task.key] = {
            "title": task.title,
            "action": task.action,
            "assignee_type": task.assignee_type,
            "assignee": "employee"
            if task.assignee_id == run.employee_id
            else ("manager" if task.assignee_id else None),
            "due_in_days": round((task.due_at - run.effective_at).total_seconds() / 86400, 2),
            "status": task.status,
            "max_attempts": task.max_attempts,
            "params": task.params,
            "template": task.template_id,
            "depends_on": sorted(dep.key for dep in task.depends_on.all()),
        }
    event = AuditEvent.objects.get(action=AuditEvent.Action.JOIN_STARTED, target_id=str(run.pk))
    return {
        "run": (run.kind, run.status, run.event_date, run.effective_at, run.details.keys(), run.started_by_id),
        "history": run.history.count(),
        "audit": (event.actor_id, sorted(event.detail)),
        "tasks": tasks,
    }


@pytest.mark.parametrize("start_in_days", [30, -1])  # a future joiner (nothing due) and one already started (all due)
def test_bulk_join_runs_equal_joiner_start(it_admin, start_in_days):
    role, department, location = RoleFactory(code="dev"), DepartmentFactory(code="ENG"), LocationFactory(code="BER-1")
    template = ChecklistTemplateFactory(name="Onboarding", kind=ChecklistKind.JOIN)
    first = TaskTemplateFactory(checklist=template, key="welcome", assignee=Assignee.MANAGER, due_offset_days=-2)
    second = TaskTemplateFactory(checklist=template, key="buddy", assignee=Assignee.EMPLOYEE, due_offset_days=1)
    second.depends_on.add(first)
    TaskTemplateFactory(
        checklist=template, key="kit", assignee=Assignee.SYSTEM, action="reserve_kit", due_offset_days=-10
    )
    other = ChecklistTemplateFactory(name="Finance only", kind=ChecklistKind.JOIN)
    other.departments.add(DepartmentFactory(code="FIN"))
    TaskTemplateFactory(checklist=other, key="finance")
    manager = EmployeeFactory(employee_number="M1")
    start = timezone.localdate() + datetime.timedelta(days=start_in_days)
    people = [
        EmployeeFactory(
            employee_number=f"J{i}",
            role=role,
            department=department,
            location=location,
            manager=manager,
            start_date=start,
        )
        for i in range(2)
    ]
    one = joiner.joiner_start(employee=people[0], acting_user=it_admin)
    (bulk,) = joiners_start(employees=[people[1]], acting_user=it_admin)
    assert snapshot(bulk) == snapshot(one)
    assert set(snapshot(bulk)["tasks"]) == {
        f"{template.pk}:welcome",
        f"{template.pk}:buddy",
        f"{template.pk}:kit",
        "core:provision-access",
        "core:activate",
    }
    # Started twice: the existing run stands, nothing is added.
    assert joiners_start(employees=people, acting_user=it_admin) == []
    assert ChecklistRun.objects.filter(kind=ChecklistKind.JOIN).count() == 2
