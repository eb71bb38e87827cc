"""Who may see and do what with checklist tasks, hardware returns, a manager's team and change requests.

Views go through these helpers and never fetch a row by id unchecked. What a user may not see is
reported as missing (`Http404`): an id tried in a URL tells nothing about anyone else.

- Tasks: the person a task is assigned to (employee or manager tasks of a run).
- Hardware returns: the person returning the asset (signed in, or through their signed return link).
- Team: a manager sees their direct reports, each one's access, hardware and open checklists.
"""

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404

from accounts.models import LIVE_ENTITLEMENT_STATUSES, Employee, EmployeeStatus, Entitlement
from accounts.selectors import employee_for_user
from assets.models import HELD_STATUSES, HardwareAsset
from offboarding import selectors
from offboarding.models import (
    Assignee,
    ChangeRequest,
    ChangeRequestStatus,
    ChecklistRun,
    HardwareReturn,
    ReturnStatus,
    RunStatus,
    Task,
)
from offboarding.selectors import tasks_for_assignee


def tasks_for_user(user) -> QuerySet[Task]:
    """Unfinished manual tasks assigned to the signed-in person, in open runs, soonest due first."""
    employee = employee_for_user(user)
    if employee is None:
        return Task.objects.none()
    return tasks_for_assignee(employee=employee)


def task_for_assignee(user, pk: int) -> Task:
    """The task `pk` if it is assigned to the signed-in person (a person's task, not the system's); else `Http404`."""
    employee = employee_for_user(user)
    task = (
        Task.objects.filter(pk=pk, assignee=employee)
        .exclude(assignee_type=Assignee.SYSTEM)
        .select_related("run__employee")
        .first()
        if employee is not None
        else None
    )
    if task is None:
        raise Http404("No such task.")
    return task


def returns_for_employee(employee: Employee | None) -> QuerySet[HardwareReturn]:
    """The person's hardware returns that are not cancelled, open ones first; asset and model included."""
    if employee is None:
        return HardwareReturn.objects.none()
    return (
        HardwareReturn.objects.filter(employee=employee)
        .exclude(status=ReturnStatus.CANCELLED)
        .select_related("asset__model", "drop_off_location")
        .order_by("status", "due_date", "pk")
    )


def return_for_holder(employee: Employee | None, pk: int) -> HardwareReturn:
    """The return `pk` if `employee` is the one returning it; `Http404` otherwise."""
    item = returns_for_employee(employee).filter(pk=pk).first()
    if item is None:
        raise Http404("No such hardware return.")
    return item


def _count(queryset: QuerySet, field: str):
    """The number of rows of `queryset` whose `field` is the outer employee, as a subquery."""
    rows = queryset.filter(**{field: OuterRef("pk")}).order_by().values(field).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(rows[:1], output_field=IntegerField()), 0)


def reports_for_manager(user) -> QuerySet[Employee]:
    """The signed-in manager's direct reports (not yet anonymised), each annotated with how many live
    entitlements and held assets they have and how many checklists are open; one query for the lot."""
    manager = employee_for_user(user)
    if manager is None:
        return Employee.objects.none()
    return (
        Employee.objects.filter(manager=manager, anonymised_at__isnull=True)
        .select_related("role", "department", "location")
        .annotate(
            # One correlated count each (indexed on the person), rather than three joins whose rows multiply.
            access_count=_count(Entitlement.objects.filter(status__in=LIVE_ENTITLEMENT_STATUSES), "employee"),
            hardware_count=_count(HardwareAsset.objects.filter(status__in=HELD_STATUSES), "assigned_to"),
            open_runs=_count(ChecklistRun.objects.filter(status=RunStatus.RUNNING), "employee"),
        )
        .order_by("last_name", "first_name", "pk")
    )


def report_for_manager(user, pk: int) -> Employee:
    """The direct report `pk` of the signed-in manager, or `Http404`."""
    report = reports_for_manager(user).filter(pk=pk).first()
    if report is None:
        raise Http404("No such person in your team.")
    return report


def report_detail(report: Employee, manager: Employee | None = None) -> dict:
    """What the team page shows of one report, in a constant number of queries."""
    from assets.selectors import hardware_for_employee

    open_runs = list(
        selectors.runs_with_progress().filter(employee=report, status=RunStatus.RUNNING).order_by("-created_at")
    )
    for run in open_runs:
        run.blocked_by = selectors.run_blocked_by(run)
    return {
        "entitlements": list(
            Entitlement.objects.filter(employee=report, status__in=LIVE_ENTITLEMENT_STATUSES)
            .select_related("application")
            .order_by("application__name")
        ),
        "hardware": list(hardware_for_employee(report)),
        "runs": open_runs,
        "change_requests": list(
            ChangeRequest.objects.filter(employee=report, requested_by=manager or report.manager).select_related(
                "new_role", "new_department", "new_manager"
            )[:10]
        ),
        "can_request": report.status != EmployeeStatus.TERMINATED,
        "pending_kinds": set(
            ChangeRequest.objects.filter(employee=report, status=ChangeRequestStatus.PENDING).values_list(
                "kind", flat=True
            )
        ),
    }
