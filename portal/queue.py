"""Enqueue work for django-q2 only after the current transaction commits.

Only ids travel to the queue: the task fetches the row again and calls a service,
so a task never acts on a stale copy nor on a row whose transaction rolled back.
"""

from functools import partial

from django.db import transaction
from django_q.tasks import async_task


def enqueue_on_commit(func_path: str, *ids: int | str, **options) -> None:
    """Schedule `func_path(*ids)` on the queue once the surrounding transaction commits."""
    for value in ids:
        if not isinstance(value, int | str):
            raise TypeError(f"Only ids may be enqueued, not {type(value).__name__}.")
    transaction.on_commit(partial(async_task, func_path, *ids, **options))
