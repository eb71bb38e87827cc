"""The lifecycle engine: generic checklist runs, whatever the flow (join, move, leave, access).

This package's namespace is its public interface, a deliberate facade: other modules write
`from offboarding import engine` and call `engine.run_start(...)`, `engine.task_add(...)`,
`engine.task_complete(...)`, never a sub-module. The sub-modules are how it is built:
`templates` (which templates apply, whether they can run), `runs` (start, materialise, add
tasks, advance, close, cancel, record revocations), `execution` (claim, run an action, retry
with backoff), `manual` (people complete, retry, skip), `sweeper` (recovery every minute) and
`reminders` (overdue tasks by email). Settings come from `offboarding.conf.lifecycle_setting`.

It knows nothing of joiners, movers or leavers: those are `offboarding.flows`, built on this.
"""

from offboarding.engine.execution import action_registry, task_claim, task_execute, task_failure_alert
from offboarding.engine.manual import task_complete, task_retry, task_skip
from offboarding.engine.reminders import tasks_remind_overdue
from offboarding.engine.runs import (
    EXECUTE_TASK,
    RUN_STARTED_ACTIONS,
    run_advance,
    run_cancel,
    run_close_if_finished,
    run_create,
    run_record_revocation,
    run_start,
    runnable_tasks,
    task_add,
    task_add_many,
    tasks_start_now,
)
from offboarding.engine.sweeper import sweep
from offboarding.engine.templates import dependency_cycle, template_dependency_cycle, template_validate, templates_for

__all__ = [
    "EXECUTE_TASK",
    "RUN_STARTED_ACTIONS",
    "action_registry",
    "dependency_cycle",
    "run_advance",
    "run_cancel",
    "run_close_if_finished",
    "run_create",
    "run_record_revocation",
    "run_start",
    "runnable_tasks",
    "sweep",
    "task_add",
    "task_add_many",
    "task_claim",
    "task_complete",
    "task_execute",
    "task_failure_alert",
    "task_retry",
    "task_skip",
    "tasks_remind_overdue",
    "tasks_start_now",
    "template_dependency_cycle",
    "template_validate",
    "templates_for",
]
