"""The leaver flow: terminating an employee (the leave run) and what happens at the cut-off.

The run's core steps, in order: disable the login, set the status, revoke every entitlement,
hand over approvals and owned applications, open and remind hardware returns, record the
purge date. The steps' actions live in `offboarding.actions.lifecycle`.
"""

import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import (
    Employee,
    EmployeeStatus,
)
from accounts.services import access_requests, employees
from offboarding import engine
from offboarding.flows.common import CoreStep, end_of_day, ensure_steps
from offboarding.models import (
    ChecklistKind,
    ChecklistRun,
    RunStatus,
)
from portal.audit import audit_record
from portal.models import AuditEvent

LEAVER_STEPS = (
    CoreStep("disable-login", "Disable login and end sessions", "disable_login"),
    CoreStep("set-terminated", "Set the status to terminated", "mark_terminated"),
    CoreStep("revoke-access", "Revoke every entitlement through its connector", "revoke_all_access"),
    CoreStep("hand-over", "Hand pending approvals and owned applications to the manager", "hand_over_approvals"),
    CoreStep("hardware-returns", "Open a hardware return per asset held", "create_hardware_returns"),
    CoreStep("remind-returns", "Remind the leaver to return hardware", "remind_hardware_returns"),
    CoreStep("schedule-purge", "Record the retention purge date", "schedule_purge"),
)


@transaction.atomic
def employee_terminate(
    *,
    employee: Employee,
    last_day: datetime.date,
    acting_user,
    immediate: bool = False,
    reason: str = "",
    cut_off: datetime.datetime | None = None,
) -> ChecklistRun:
    """Terminate an employee now or at a future cut-off; returns the leave run.

    A stable contract, relied on by reliability tests and benchmarks:

    - refused with a ValidationError (naming the field) when `last_day` is before the start
      date or the employee is already terminated;
    - idempotent and safe under concurrency: while a leave run is open, any further call returns
      that run (the employee row is locked first), so two concurrent terminations make one run;
    - `end_date` is set at once; the cut-off is now (`immediate`), `cut_off` if given, or the end
      of `last_day` (local time), never in the past. The run's `effective_at` is the cut-off;
    - at the cut-off, in this order (each step waits for the previous one, and a fan-out step's
      children): `disable_login` → `mark_terminated` (status terminated; other open join/move
      runs cancelled) → `revoke_all_access` (one `revoke_entitlement` child per live
      entitlement) → `hand_over_approvals` → `create_hardware_returns` →
      `remind_hardware_returns` (repeats every `REMINDER_INTERVAL_DAYS` while a return is open)
      → `schedule_purge` (records the purge date, last day + `RETENTION_DAYS` + 1, in its result
      and `run.details["purge_due"]`; the purge is not part of the run). These come from the
      leave templates; any a template lacks is added to the run (keys `core:<step>`);
    - `time_to_deprovision` = cut-off → last revocation confirmed (automated or by IT);
    - the run closes once its work is done: access revoked, approvals handed over, hardware
      returned (`hardware_return_receive`) and the people's tasks completed.

    Records are kept: the status becomes terminated at the cut-off, nothing is deleted.
    """
    locked = Employee.objects.select_for_update().get(pk=employee.pk)
    open_run = ChecklistRun.objects.filter(employee=locked, kind=ChecklistKind.LEAVE, status=RunStatus.RUNNING).first()
    if open_run is not None:
        return open_run
    if locked.status == EmployeeStatus.TERMINATED:
        raise ValidationError(f"{locked.full_name} is already terminated.")
    if last_day is None:
        raise ValidationError({"last_day": "Give the last day of work."})
    if last_day < locked.start_date:
        raise ValidationError(
            {
                "last_day": f"The last day ({last_day:%Y-%m-%d}) is before the start date "
                f"({locked.start_date:%Y-%m-%d}); a termination cannot end employment before it began."
            }
        )
    now = timezone.now()
    if immediate:
        cut_off = now
    elif cut_off is None:
        cut_off = max(end_of_day(last_day), now)
    elif cut_off < now:
        cut_off = now
    employees.employee_update(employee=locked, changes={"end_date": last_day}, acting_user=acting_user)
    run = engine.run_start(
        employee=locked,
        kind=ChecklistKind.LEAVE,
        event_date=last_day,
        acting_user=acting_user,
        effective_at=cut_off,
        details={"immediate": immediate, "reason": reason, "cut_off": cut_off.isoformat()},
    )
    ensure_steps(run, LEAVER_STEPS, chained=True)
    audit_record(
        action=AuditEvent.Action.TERMINATE,
        target=locked,
        acting_user=acting_user,
        detail={
            "last_day": last_day,
            "cut_off": cut_off,
            "immediate": immediate,
            "reason": reason,
            "run": run.pk,
        },
    )
    engine.run_advance(run=run)
    return run


def employee_cut_off(*, employee: Employee, run: ChecklistRun, acting_user=None) -> dict:
    """At the cut-off: status terminated; the person's own pending access requests and other open runs
    (join, move, access change) are cancelled.

    Their unfinished tasks are skipped with the reason (`engine.run_cancel`); a task running
    right now finishes. Idempotent: a second call finds the status set and nothing open.
    """
    employees.employee_set_status(
        employee=employee, status=EmployeeStatus.TERMINATED, acting_user=acting_user, reason="leaver cut-off"
    )
    withdrawn = access_requests.access_requests_close_for_leaver(employee=employee, acting_user=acting_user)
    cancelled = []
    for other in ChecklistRun.objects.filter(employee_id=employee.pk, status=RunStatus.RUNNING).exclude(pk=run.pk):
        try:
            engine.run_cancel(run=other, acting_user=acting_user, reason=f"Employee terminated (leave run #{run.pk}).")
        except ValidationError:
            continue  # it closed meanwhile
        cancelled.append(other.pk)
    return {"status": EmployeeStatus.TERMINATED, "cancelled_runs": cancelled, "withdrawn_requests": withdrawn}


def open_leave_run(employee: Employee) -> ChecklistRun | None:
    """The employee's open leave run, if any."""
    return ChecklistRun.objects.filter(employee=employee, kind=ChecklistKind.LEAVE, status=RunStatus.RUNNING).first()
