"""Entry points the queue calls. They take ids only and call services."""

from accounts.services import notices
from offboarding import engine
from offboarding.flows import access_changes, retention


def task_execute(task_id: int) -> str:
    """Run one checklist task (see `engine.task_execute`); a second delivery does nothing."""
    return engine.task_execute(task_id=task_id)


def sweep() -> dict:
    """Every minute: re-enqueue lost or stalled tasks, start due ones, close finished runs."""
    return engine.sweep()


def remind_overdue() -> dict:
    """Every hour: email overdue manual tasks to their assignees or the IT team."""
    return engine.tasks_remind_overdue()


def purge_due() -> dict:
    """Every day: anonymise leavers whose retention period is over (`flows.retention.retention_purge_due`)."""
    return retention.retention_purge_due()


def access_request_fulfil(request_id: int) -> dict:
    """After a final approval: provision the request's entitlement through the engine (idempotent)."""
    return access_changes.access_request_fulfil(request_id=request_id)


def access_review_apply(item_id: int) -> dict:
    """After a review's revoke or level change: one engine task applies it (idempotent)."""
    return access_changes.access_review_apply(item_id=item_id)


def access_hourly() -> dict:
    """Every hour: revoke time-bound access that ended, tell holders whose access ends soon, remind approvers."""
    return {
        "expired": access_changes.access_expire_due(),
        "notices": notices.entitlements_notify_expiry(),
        "reminders": notices.approval_steps_remind(),
    }
