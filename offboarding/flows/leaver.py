"""The leaver flow: terminating an employee (the leave run) and what happens at the cut-off.

The run's core steps: disable the login first, then set the status; after that, side by side,
revoke every entitlement (one child task each, planned when the run starts), hand over approvals
and owned applications, open (then remind) hardware returns and record the purge date. The
steps' actions live in `offboarding.actions.lifecycle`.
"""

import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.event_data import employee_data
from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    Employee,
    EmployeeStatus,
    Entitlement,
)
from accounts.services import access_requests, employees
from offboarding import engine
from offboarding.flows.common import CoreStep, end_of_day, ensure_steps, wait_for_children
from offboarding.models import (
    ChecklistKind,
    ChecklistRun,
    RunStatus,
    Task,
)
from portal.audit import audit_record
from portal.events import event_emit
from portal.models import AuditEvent, EventType

# Login first (the fastest way to cut access), then the status; the rest needs only those two,
# so one slow or failing step (a revocation) holds up nothing but what truly follows from it.
AFTER_CUT_OFF = ("set-terminated",)
LEAVER_STEPS = (
    CoreStep("disable-login", "Disable login and end sessions", "disable_login"),
    CoreStep("set-terminated", "Set the status to terminated", "mark_terminated", after=("disable-login",)),
    CoreStep(
        "revoke-access", "Revoke every entitlement through its connector", "revoke_all_access", after=AFTER_CUT_OFF
    ),
    CoreStep(
        "hand-over",
        "Hand pending approvals and owned applications to the manager",
        "hand_over_approvals",
        after=AFTER_CUT_OFF,
    ),
    CoreStep(
        "hardware-returns", "Open a hardware return per asset held", "create_hardware_returns", after=AFTER_CUT_OFF
    ),
    CoreStep(
        "remind-returns", "Remind the leaver to return hardware", "remind_hardware_returns", after=("hardware-returns",)
    ),
    CoreStep("schedule-purge", "Record the retention purge date", "schedule_purge", after=AFTER_CUT_OFF),
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
    - at the cut-off, in this order: `disable_login` first, then `mark_terminated` (status
      terminated; other open join/move runs cancelled); then, independently of each other
      (`LEAVER_STEPS`), `revoke_all_access`, `hand_over_approvals`, `create_hardware_returns`
      (then `remind_hardware_returns`, one task that repeats every `REMINDER_INTERVAL_DAYS`
      while a return is open) and `schedule_purge` (records the purge date, last day +
      `RETENTION_DAYS` + 1, in its result and `run.details["purge_due"]`; the purge is not part
      of the run). A revocation that fails, or waits for IT, holds up none of the others; a
      task that exhausts its retries is failed and IT alerted (`engine.task_execute`);
    - these come from the leave templates, with the templates' dependencies; any core step a
      template lacks is added (key `core:<step>`), and each core step waits at least for the
      core steps it needs (login before anything else), whatever the template says;
    - one `revoke_entitlement` child per live entitlement is created now, with the run, due at
      the cut-off (`leaver_revocations_add`), so the run's task count is known from the start;
      at the cut-off `revoke_all_access` adds only access granted since;
    - no task is due before it is created (`engine.task_add`): an immediate termination's
      template tasks due "3 days before" are due now, a person's a day from now;
    - `time_to_deprovision` = cut-off → last revocation confirmed (automated or by IT);
    - the run closes once its work is done: access revoked, approvals handed over, hardware
      returned (`hardware_return_receive`) and the people's tasks completed.

    Records are kept: the status becomes terminated at the cut-off, nothing is deleted.
    """
    # The lock `engine.run_start` would take (with the manager a task may go to), taken once here.
    locked = Employee.objects.select_for_update(of=("self",)).select_related("manager").get(pk=employee.pk)
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
    run = engine.run_create(  # no open leave run (looked for above, under the lock)
        employee=locked,
        kind=ChecklistKind.LEAVE,
        event_date=last_day,
        acting_user=acting_user,
        effective_at=cut_off,
        details={"immediate": immediate, "reason": reason, "cut_off": cut_off.isoformat()},
        queue=False,  # `run_advance` at the end queues what can run, once the core steps wait as they must
    )
    steps = ensure_steps(run, LEAVER_STEPS)
    leaver_revocations_add(run=run, parent=steps["revoke-access"])
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
    event_emit(
        event_type=EventType.EMPLOYEE_LEFT,
        data=lambda: {**employee_data(locked), "last_day": last_day, "cut_off": cut_off, "run": run.pk},
    )
    engine.run_advance(run=run)
    return run


def leaver_revocations_add(*, run: ChecklistRun, parent: Task) -> list[Task]:
    """One `revoke_entitlement` child of `parent` per live entitlement of the leaver; the children.

    Key `revoke:<entitlement>`, due at the cut-off, each waiting for what `parent` waits for (the
    login and the status, and any step a template put before it), not for `parent` itself: the
    revocations start the moment the status is set, side by side with `parent`, which at the
    cut-off only adds the access granted since (one hop fewer between the cut-off and the last
    revocation). A task that waits for `parent` waits for every child too. Idempotent: a child
    already there is returned as is, so calling it when the run starts and again at the cut-off
    adds only the access granted in between.
    """
    live = (
        Entitlement.objects.filter(employee_id=run.employee_id, status__in=LIVE_ENTITLEMENT_STATUSES)
        .select_related("application")
        .order_by("application__name", "pk")
    )
    prerequisites = list(parent.depends_on.all())
    children = engine.task_add_many(
        run=run,
        tasks=[
            {
                "key": f"revoke:{entitlement.pk}",
                "title": f"Revoke {entitlement.application} ({entitlement.level})",
                "action": "revoke_entitlement",
                "params": {"entitlement": entitlement.pk, "reason": "Leaver"},
                "parent": parent,
                "depends_on": prerequisites,
                "due_at": run.effective_at,
            }
            for entitlement in live
        ],
    )
    wait_for_children(parent, children)
    return children


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
