"""Enqueue work for django-q2 only after the current transaction commits.

Only ids travel to the queue: the task fetches the row again and calls a service,
so a task never acts on a stale copy nor on a row whose transaction rolled back.
"""

from django.db import transaction
from django_q.tasks import async_task

# Keyword arguments that django-q2's `async_task` reads as options. Any other keyword would be
# passed on to the task function itself, i.e. would travel to the queue, so it is refused.
QUEUE_OPTIONS = frozenset(
    {"task_name", "q_options", "hook", "group", "save", "sync", "cached", "ack_failure", "cluster", "timeout", "broker"}
)


def enqueue_on_commit(func_path: str, *ids: int | str, **options) -> None:
    """Schedule `func_path(*ids)` on the queue once the surrounding transaction commits.

    Nothing is enqueued if the transaction rolls back. Arguments must be ids (int or str, not
    bool); keywords must be queue options (`QUEUE_OPTIONS`), never task data. The callback is
    robust: if the broker refuses the task after commit, the error is logged and the caller's
    (already committed) work stands; the periodic sweeper re-enqueues tasks left in `queued`.
    """
    if not isinstance(func_path, str):
        raise TypeError(f"Give the task as a dotted path, not {type(func_path).__name__}.")
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"Only ids may be enqueued, not {type(value).__name__}.")
    unknown = sorted(set(options) - QUEUE_OPTIONS)
    if unknown:
        raise TypeError(
            f"Only ids may be enqueued; {', '.join(unknown)} would travel to the task. "
            f"Keywords must be queue options: {', '.join(sorted(QUEUE_OPTIONS))}."
        )

    # A named function rather than functools.partial: Django logs a robust callback's failure
    # by its __qualname__, which a partial lacks (the logging itself would then raise).
    def enqueue() -> None:
        async_task(func_path, *ids, **options)

    enqueue.__qualname__ = f"enqueue_on_commit({func_path})"
    transaction.on_commit(enqueue, robust=True)
