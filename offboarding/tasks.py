"""Entry points the queue calls. They take ids only and call services."""

from accounts import approvals
from offboarding import access_changes, flows, services


def task_execute(task_id: int) -> str:
    """Run one checklist task (see `services.task_execute`); a second delivery does nothing."""
    return services.task_execute(task_id=task_id)


def sweep() -> dict:
    """Every minute: re-enqueue lost or stalled tasks, start due ones, close finished runs."""
    return services.sweep()


def remind_overdue() -> dict:
    """Every hour: email overdue manual tasks to their assignees or the IT team."""
    return services.tasks_remind_overdue()


def purge_due() -> dict:
    """Every day: anonymise leavers whose retention period is over (`flows.retention_purge_due`)."""
    return flows.retention_purge_due()


def access_request_fulfil(request_id: int) -> dict:
    """After a final approval: provision the request's entitlement through the engine (idempotent)."""
    return access_changes.access_request_fulfil(request_id=request_id)


def access_hourly() -> dict:
    """Every hour: revoke time-bound access that ended, tell holders whose access ends soon, remind approvers."""
    return {
        "expired": access_changes.access_expire_due(),
        "notices": approvals.entitlements_notify_expiry(),
        "reminders": approvals.approval_steps_remind(),
    }
