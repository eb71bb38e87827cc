"""Enqueue work for django-q2 only after the current transaction commits.

Only ids travel to the queue: the task fetches the row again and calls a service,
so a task never acts on a stale copy nor on a row whose transaction rolled back.
"""

import logging
import os

from django.db import transaction
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

# One broker per process and queue. django-q2 makes a new one for every `async_task` without a
# `broker`, and on Redis that is a new connection (about 4 ms) for every task a task enqueues.
_brokers: dict[tuple, Broker] = {}

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
        if "broker" in options:
            async_task(func_path, *ids, **options)
            return
        try:
            async_task(func_path, *ids, broker=_broker(options.get("cluster")), **options)
        except Exception:  # noqa: BLE001 - e.g. a Redis restart broke the kept connection
            # Once more on a fresh connection, as django-q2 would have made. A second delivery of
            # the same task is harmless: a task is claimed once.
            logger.warning("Enqueueing %s failed on the kept broker connection; retrying once.", func_path)
            _brokers.clear()
            async_task(func_path, *ids, **options)

    enqueue.__qualname__ = f"enqueue_on_commit({func_path})"
    transaction.on_commit(enqueue, robust=True)


def _broker(cluster: str | None) -> Broker:
    """This process's broker for `cluster` (default: the configured queue), made once and kept.

    Keyed by everything `get_broker` reads (queue name, broker settings) and the process id, so
    a forked worker or a test that points the queue elsewhere (`portal.testing.worker.enqueue_to`)
    gets its own.
    """
    key = (os.getpid(), cluster or Conf.CLUSTER_NAME, str(Conf.REDIS), Conf.ORM, Conf.BROKER_CLASS)
    broker = _brokers.get(key)
    if broker is None:
        broker = _brokers[key] = get_broker(cluster)
    return broker
