"""Automated actions of the join, move and leave checklists.

Each takes the Task, reads the target's state before acting, uses `str(task.pk)` as the
idempotency key towards connectors, and returns a dict (stored as the task's result) or a
`Handoff` when a person must finish (a manual connector): IT completing the handed-off task
runs the action's `on_manual_complete`, which records the change (e.g. access confirmed).

Fan-out actions (`provision_birthrights`, `revoke_all_access`) add one child task per
entitlement (`engine.task_add_many`, idempotent on the key) and make every task that
waited for them wait for the children too, so a downstream step starts only once each
entitlement is done. A leaver's revocations are planned when the run starts
(`leaver.leaver_revocations_add`); `revoke_all_access` adds only access granted since.
`remind_hardware_returns` repeats as one task (`Repeat`) while a return is open.

Names used by templates:
  joiner  reserve_kit, provision_birthrights (→ provision_entitlement), send_email, activate_employee
  mover   provision_entitlement, change_entitlement_level, revoke_entitlement (with recheck)
  leaver  disable_login, mark_terminated, revoke_all_access (→ revoke_entitlement), hand_over_approvals,
          create_hardware_returns, remind_hardware_returns, schedule_purge (records the purge date;
          the daily `offboarding.tasks.purge_due` purges), purge_personal_data (older runs)
  purge   forget_account (one per application whose connector can forget, after the purge)
"""

import datetime

from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.connectors import ManualActionRequired
from accounts.models import (
    Application,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementStatus,
)
from accounts.services import approval_steps, employees, provisioning, reviews
from offboarding import engine
from offboarding.actions import Handoff, Repeat, register
from offboarding.conf import lifecycle_setting
from offboarding.flows import emails, joiner, leaver, mover, retention, returns
from offboarding.flows.common import wait_for_children
from offboarding.models import ChecklistRun, Task


def _employee(task) -> Employee:
    return Employee.objects.select_related("role", "manager").get(pk=task.run.employee_id)


def _entitlement(task) -> Entitlement:
    return Entitlement.objects.select_related("employee", "application").get(pk=task.params["entitlement"])


def _remember(task, **data) -> None:
    """Keep progress on the task row at once (a second delivery reads it before acting again)."""
    task.result = {**(task.result or {}), **data}
    Task.objects.filter(pk=task.pk).update(result=task.result)


def _record_revocation(task, entitlement: Entitlement) -> None:
    if entitlement.status == EntitlementStatus.REVOKED:
        # By id: only a leave run keeps a time to deprovision, and the update says so itself.
        engine.run_record_revocation(run=ChecklistRun(pk=task.run_id), at=entitlement.revoked_at)
    _record_review(task)


def _record_review(task) -> None:
    """A task that applies an access review's decision tells its item once the change is confirmed."""
    if task.params.get("review_item"):
        reviews.review_item_record_applied(item_id=task.params["review_item"])


# --- Entitlements -------------------------------------------------------------------------


def _confirm_provisioned(task, acting_user) -> None:
    provisioning.entitlement_confirm_provisioned(
        entitlement=_entitlement(task), acting_user=acting_user, run=task.run_id
    )


@register(
    "provision_entitlement",
    "Provision one entitlement through its connector",
    on_manual_complete=_confirm_provisioned,
)
def provision_entitlement(task):
    entitlement = _entitlement(task)
    if entitlement.status == EntitlementStatus.ACTIVE:
        return {"entitlement": entitlement.pk, "status": entitlement.status}
    if entitlement.status != EntitlementStatus.PENDING:
        note = "revoked before it was provisioned"
        return {"entitlement": entitlement.pk, "status": entitlement.status, "note": note}
    try:
        entitlement = provisioning.entitlement_provision(
            entitlement=entitlement, idempotency_key=str(task.pk), run=task.run_id
        )
    except ManualActionRequired as exc:
        return Handoff(instructions=str(exc), result={"entitlement": entitlement.pk})
    return {"entitlement": entitlement.pk, "status": entitlement.status, "external_id": entitlement.external_id}


def _confirm_revoked(task, acting_user) -> None:
    entitlement = provisioning.entitlement_confirm_revoked(
        entitlement=_entitlement(task),
        acting_user=acting_user,
        reason=task.params.get("reason", ""),
        run=task.run_id,
    )
    _record_revocation(task, entitlement)


@register(
    "revoke_entitlement",
    "Revoke one entitlement through its connector",
    on_manual_complete=_confirm_revoked,
)
def revoke_entitlement(task):
    """Params: `entitlement`, `reason`, and `recheck` (a mover's revocation: keep the access if
    the person's role or an approved request justifies it by now)."""
    if task.params.get("recheck"):
        entitlement = _entitlement(task)
        if entitlement.status != EntitlementStatus.REVOKED:
            justification = mover.entitlement_justification(entitlement=entitlement)
            if justification:
                return {"entitlement": entitlement.pk, "kept": justification}
    # The service reads the entitlement (and returns at once if it is revoked already): by id only,
    # so that a leaver's revocation reads it once.
    entitlement = Entitlement(pk=task.params["entitlement"])
    try:
        entitlement = provisioning.entitlement_deprovision(
            entitlement=entitlement,
            idempotency_key=str(task.pk),
            reason=task.params.get("reason", ""),
            run=task.run_id,
        )
    except ManualActionRequired as exc:
        return Handoff(instructions=str(exc), result={"entitlement": entitlement.pk})
    _record_revocation(task, entitlement)
    return {"entitlement": entitlement.pk, "status": entitlement.status}


def _confirm_level(task, acting_user) -> None:
    provisioning.entitlement_confirm_level_changed(
        entitlement=_entitlement(task), level=task.params["level"], acting_user=acting_user, run=task.run_id
    )
    _record_review(task)


@register(
    "change_entitlement_level",
    "Change the level of one entitlement through its connector",
    on_manual_complete=_confirm_level,
)
def change_entitlement_level(task):
    entitlement = _entitlement(task)
    level = task.params["level"]
    if entitlement.level == level or entitlement.status != EntitlementStatus.ACTIVE:
        if entitlement.level == level:
            _record_review(task)
        elif task.params.get("review_item"):
            # Nothing to change any more: the review's item shows why, open for IT.
            reviews.review_item_record_failed(
                item_id=task.params["review_item"],
                error=f"The access is {entitlement.get_status_display().lower()}; its level cannot be changed.",
            )
        return {"entitlement": entitlement.pk, "level": entitlement.level, "status": entitlement.status}
    try:
        entitlement = provisioning.entitlement_change_level(
            entitlement=entitlement, level=level, idempotency_key=str(task.pk), run=task.run_id
        )
    except ManualActionRequired as exc:
        return Handoff(instructions=str(exc), result={"entitlement": entitlement.pk})
    _record_review(task)
    return {"entitlement": entitlement.pk, "level": entitlement.level}


# --- Joiner -------------------------------------------------------------------------------


@register("provision_birthrights", "Plan the role's birthright access and provision each (fan-out)")
def provision_birthrights(task):
    employee = _employee(task)
    if employee.status == EmployeeStatus.TERMINATED:
        return {"entitlements": [], "note": "employee terminated; nothing provisioned"}
    planned = []
    if employee.role_id:
        for birthright in employee.role.birthrights.select_related("application").order_by("application__name"):
            entitlement = provisioning.entitlement_plan(
                employee=employee, application=birthright.application, level=birthright.access_level
            )
            if entitlement.status != EntitlementStatus.PENDING:
                continue  # already held (active), or being revoked
            planned.append(
                {
                    "key": f"provision:{entitlement.pk}",
                    "title": f"Give access to {birthright.application} ({entitlement.level})",
                    "action": "provision_entitlement",
                    "params": {"entitlement": entitlement.pk},
                    "parent": task,
                }
            )
    children = engine.task_add_many(run=task.run, tasks=planned)
    wait_for_children(task, children)
    return {"entitlements": [child.params["entitlement"] for child in children]}


@register("reserve_kit", "Reserve the role's hardware kit from stock (a purchase task when none is left)")
def reserve_kit(task):
    employee = _employee(task)
    if employee.status == EmployeeStatus.TERMINATED:
        return {"reserved": [], "purchases": [], "note": "employee terminated; nothing reserved"}
    return joiner.kit_reserve(employee=employee, run=task.run, parent=task)


@register("activate_employee", "Set a pre-hire employee active (day one)")
def activate_employee(task):
    employee = _employee(task)
    if employee.status != EmployeeStatus.PRE_HIRE:
        return {"status": employee.status, "changed": False}
    employees.employee_set_status(employee=employee, status=EmployeeStatus.ACTIVE, acting_user=None, reason="day one")
    return {"status": EmployeeStatus.ACTIVE, "changed": True}


@register("send_email", "Send a lifecycle email (params: template, to, only_before_event)")
def send_email(task):
    """Params: `template` (a name under templates/emails/), `to` (list of personal, work, manager, it),
    `only_before_event` (true: not sent once the event has passed, e.g. the before-day-one welcome)."""
    if task.result.get("sent_at"):
        return task.result
    template = task.params.get("template")
    if not template:
        raise ValidationError("This task has no email template (params.template).")
    employee = _employee(task)
    if task.params.get("only_before_event") and timezone.now() >= task.run.effective_at:
        return {"template": template, "sent_at": None, "note": "not sent: the event had already passed"}
    kinds = task.params.get("to") or ["work"]
    recipients = emails.email_addresses(employee, kinds)
    if not recipients:
        return Handoff(
            instructions=(
                f"No {' or '.join(kinds)} email address for {employee.full_name}: send the “{template}” "
                "email by another way, then complete this task."
            ),
            result={"template": template},
        )
    # The task id as idempotency key: a retry after a kill between sending and `_remember` sends nothing.
    emails.lifecycle_email_send(
        template=template, employee=employee, to=recipients, run=task.run, key=f"checklist-task:{task.pk}"
    )
    _remember(task, template=template, to=recipients, sent_at=timezone.now().isoformat())
    return task.result


# --- Leaver -------------------------------------------------------------------------------


@register("disable_login", "Disable the login and end every session")
def disable_login(task):
    return employees.employee_disable_login(employee=_employee(task), acting_user=None)


@register("mark_terminated", "Set the employee terminated; stop their other open checklists")
def mark_terminated(task):
    return leaver.employee_cut_off(employee=_employee(task), run=task.run)


@register("revoke_all_access", "Revoke every entitlement through its connector (fan-out)")
def revoke_all_access(task):
    """The children were planned when the run started; at the cut-off this adds one for any
    access granted since, and finishes, which lets every child start."""
    children = leaver.leaver_revocations_add(run=task.run, parent=task)
    if not children and not Task.objects.filter(run=task.run, action="revoke_entitlement").exists():
        engine.run_record_revocation(run=task.run)  # nothing to revoke: access is gone at this point
    return {"revocations": [child.pk for child in children]}


@register("hand_over_approvals", "Hand pending approvals and owned applications to the manager")
def hand_over_approvals(task):
    employee = _employee(task)
    outcome = approval_steps.approvals_hand_over(employee=employee, acting_user=None)
    if outcome["unassigned"]:
        why = (
            f"{employee.full_name} has no manager"
            if outcome["manager"] is None
            else f"{employee.full_name}'s manager cannot take over everything"
        )
        return Handoff(
            instructions=f"{why}. Choose who takes over, and reassign by hand: " + "; ".join(outcome["unassigned"]),
            result=outcome,
        )
    return outcome


@register("create_hardware_returns", "Open one hardware return per asset held")
def create_hardware_returns(task):
    return returns.hardware_returns_open(run=task.run)


@register("remind_hardware_returns", "Remind the leaver of open hardware returns (repeats until returned)")
def remind_hardware_returns(task):
    """Sends a reminder when one is due; while returns are open, the same task runs again
    `REMINDER_INTERVAL_DAYS` later (`Repeat`), so the run's task count stays what it was.
    Done once nothing is open; receiving the last item brings it forward (`hardware_return_receive`)."""
    outcome = returns.hardware_returns_remind(run=task.run)
    if outcome["open"]:
        interval = datetime.timedelta(days=lifecycle_setting("REMINDER_INTERVAL_DAYS"))
        rounds = int((task.result or {}).get("rounds", 0)) + 1
        return Repeat(at=timezone.now() + interval, result={**outcome, "rounds": rounds})
    return outcome


@register("schedule_purge", "Record when the daily retention purge anonymises the leaver")
def schedule_purge(task):
    """Done at once: the date goes into the result and `run.details["purge_due"]`; the daily
    `offboarding.tasks.purge_due` anonymises the person then, so the run need not stay open."""
    return retention.retention_purge_record(run=task.run)


@register("forget_account", "Ask an application's connector to forget a purged person (params: application)")
def forget_account(task):
    """Run by the retention purge's access-change tasks, one per application (`retention.account_forget_tasks_add`)."""
    application = Application.objects.get(pk=task.params["application"])
    return provisioning.account_forget(
        employee=_employee(task), application=application, idempotency_key=str(task.pk), acting_user=None
    )


@register("purge_personal_data", "Anonymise the employee's personal data, history included")
def purge_personal_data(task):
    """Kept for templates and runs made before the daily purge; `schedule_purge` no longer adds it."""
    return retention.retention_purge(employee=_employee(task), acting_user=None)
