"""Enqueue work for django-q2 only after the current transaction commits.

Only ids travel to the queue: the task fetches the row again and calls a service,
so a task never acts on a stale copy nor on a row whose transaction rolled back.
"""

import logging
import os
import threading
import time

from django.db import connections, transaction
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.models import OrmQ
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


def _check_call(func_path, ids, options) -> None:
    """The refusals of `enqueue_on_commit` (TypeError): a dotted path, ids only, queue options only."""
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


def enqueue_on_commit(func_path: str, *ids: int | str, **options) -> None:
    """Schedule `func_path(*ids)` on the queue once the surrounding transaction commits.

    Nothing is enqueued if the transaction rolls back. Arguments must be ids (int or str, not
    bool); keywords must be queue options (`QUEUE_OPTIONS`), never task data. The callback is
    robust: if the broker refuses the task after commit, the error is logged and the caller's
    (already committed) work stands; the periodic sweeper re-enqueues tasks left in `queued`.
    """
    _check_call(func_path, ids, options)

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


def enqueue_each_on_commit(func_path: str, ids: list[int | str], **options) -> None:
    """Schedule `func_path(id)` for each of `ids` once the transaction commits, in one broker write.

    The same rules as `enqueue_on_commit` (ids only, queue options only, nothing on rollback, a
    broker failure logged, not raised) and the same packages, one per id, built by django-q2's own
    `async_task`; but they reach the broker together: one INSERT of every row on the ORM broker,
    one RPUSH of every package on Redis, instead of one write (and on SQLite one write transaction)
    per task. A run whose step fans out into ten tasks enqueues them at once.
    """
    ids = list(ids)
    _check_call(func_path, ids, options)
    if "broker" in options:
        raise TypeError("enqueue_each_on_commit uses the process's broker; give no broker.")
    if not ids:
        return
    if len(ids) == 1:
        enqueue_on_commit(func_path, ids[0], **options)
        return

    def enqueue_each() -> None:
        broker = _broker(options.get("cluster"))
        collected = _Collecting(broker)
        for value in ids:
            async_task(func_path, value, broker=collected, **options)  # builds, signs; sync mode runs it
        try:
            _push_all(broker, collected.packages)
        except Exception:  # noqa: BLE001 - e.g. a Redis restart broke the kept connection
            logger.warning("Enqueueing %s tasks %s failed on the kept broker; retrying once.", len(ids), func_path)
            _brokers.clear()
            _push_all(_broker(options.get("cluster")), collected.packages)

    enqueue_each.__qualname__ = f"enqueue_each_on_commit({func_path})"
    transaction.on_commit(enqueue_each, robust=True)


class _Collecting:
    """Stands in for the broker while `async_task` builds each package: keeps them for one write."""

    def __init__(self, broker: Broker):
        self.list_key = broker.list_key
        self.packages: list[str] = []

    def enqueue(self, package: str) -> None:
        self.packages.append(package)


def _push_all(broker: Broker, packages: list[str]) -> None:
    """Put `packages` on `broker`'s queue in one write where the broker allows it."""
    if isinstance(broker, ORM):
        now = timezone.now()
        key = broker.list_key or Conf.CLUSTER_NAME
        OrmQ.objects.using(Conf.ORM).bulk_create([OrmQ(key=key, payload=p, lock=now) for p in packages])
    elif isinstance(broker, Redis):
        broker.connection.rpush(broker.list_key, *packages)
    else:
        for package in packages:
            broker.enqueue(package)


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


class BulkOrmBroker(ORM):
    """django-q2's ORM broker, taking up to `Q_BULK` tasks with one statement instead of 1 + `Q_BULK`.

    django-q2's `dequeue` reads up to `bulk` messages, then locks each with its own conditional
    UPDATE (on SQLite each one a write transaction of its own, contending with the workers' writes).
    Here one `UPDATE ... WHERE id IN (the oldest unlocked ones) AND lock < now RETURNING id, payload`
    does both, where the database has RETURNING (PostgreSQL, SQLite 3.35+); the condition is on the
    row, so PostgreSQL re-checks it after waiting for another pusher's lock and two pushers never
    take one message. Acknowledging (the monitor, after every task) is one DELETE by id through the
    cursor, not the ORM's delete (a deletion collector and a compiled query per task, for a table
    nothing refers to). Everything else is django-q2's: a message stays until acknowledged and is
    handed out again `retry` seconds after it was taken.
    """

    def delete(self, task_id):
        """Remove one message (acknowledged, or failed to unpack), in one statement."""
        self.get_connection()  # as django-q2 does: close stale connections first
        connection = connections[Conf.ORM]
        table, pk = connection.ops.quote_name(OrmQ._meta.db_table), connection.ops.quote_name(OrmQ._meta.pk.column)
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE {pk} = %s", [task_id])  # noqa: S608 - names from the model

    def acknowledge(self, task_id):
        return self.delete(task_id)

    def dequeue(self):
        self.get_connection()  # as django-q2 does: close stale connections first
        connection = connections[Conf.ORM]
        if connection.vendor not in ("postgresql", "sqlite") or not connection.features.can_return_columns_from_insert:
            return super().dequeue()
        quote = connection.ops.quote_name
        field = OrmQ._meta.get_field
        table, pk, key, lock, payload = (
            quote(name)
            for name in (
                OrmQ._meta.db_table,
                field("id").column,
                field("key").column,
                field("lock").column,
                field("payload").column,
            )
        )
        now = field("lock").get_db_prep_value(timezone.now(), connection)
        until = field("lock").get_db_prep_value(self.timeout(None), connection)
        # Names come from the model, values are parameters.
        sql = (
            f"UPDATE {table} SET {lock} = %s WHERE {pk} IN ("  # noqa: S608
            f"SELECT {pk} FROM {table} WHERE {key} = %s AND {lock} < %s ORDER BY {pk} LIMIT %s"
            f") AND {lock} < %s RETURNING {pk}, {payload}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [until, self.list_key, now, max(int(Conf.BULK), 1), now])
            taken = cursor.fetchall()
        if taken:
            return sorted(taken)  # oldest first, as queued
        time.sleep(Conf.POLL)  # empty queue, spare the CPU (as django-q2 does)
        return None


# --- Acknowledging a delivery in the task's own transaction (ORM broker) ----------------------------------
# django-q2's monitor deletes a message after the task returned: one more write transaction per task (on
# SQLite one more writer contending with the workers, on PostgreSQL one more commit). A task that records
# its outcome in a transaction can delete its message in that same transaction instead
# (`delivery_acknowledge`): the message is gone exactly when the outcome is committed, and the monitor
# is told not to delete it again. A task that does not, or a rollback, leaves it to the monitor as before.
_delivery = threading.local()


def delivery_started(sender=None, task=None, **kwargs) -> None:
    """django-q2's `pre_execute`, in the worker: note the message this task came in (ORM broker only)."""
    ack_id = task.get("ack_id") if task else None  # none in sync mode: no broker is looked up then
    _delivery.ack_id = ack_id if ack_id is not None and isinstance(_broker(None), ORM) else None
    _delivery.acknowledged = False


def delivery_acknowledge() -> bool:
    """Delete the current task's message from the ORM broker in the caller's transaction; True if it did.

    Call it inside the transaction that records the task's outcome. Does nothing (False) outside a
    worker, on the Redis broker (which has no receipts), or when the broker's database is not the one
    the transaction is on. Once that transaction commits, the monitor does not acknowledge the message
    again; if it rolls back, the message stays and the monitor acknowledges it as django-q2 does.
    """
    ack_id = getattr(_delivery, "ack_id", None)
    if ack_id is None or not connections[Conf.ORM].in_atomic_block:
        return False
    connection = connections[Conf.ORM]
    table, pk = connection.ops.quote_name(OrmQ._meta.db_table), connection.ops.quote_name(OrmQ._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {pk} = %s", [ack_id])  # noqa: S608 - names from the model

    def acknowledged() -> None:
        if getattr(_delivery, "ack_id", None) == ack_id:
            _delivery.acknowledged = True

    transaction.on_commit(acknowledged, using=Conf.ORM)
    return True


def delivery_finished(sender=None, task=None, **kwargs) -> None:
    """django-q2's `post_execute_in_worker`, before the result goes to the monitor: a message deleted
    with the outcome is not acknowledged again."""
    if task is not None and getattr(_delivery, "acknowledged", False) and task.get("ack_id") == _delivery.ack_id:
        task.pop("ack_id", None)
    _delivery.ack_id = None
    _delivery.acknowledged = False
