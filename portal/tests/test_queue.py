"""`portal.queue.enqueue_on_commit`: work reaches the queue only after commit, and only ids travel."""

import datetime

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from portal import queue
from portal.queue import enqueue_on_commit

pytestmark = pytest.mark.django_db

TASK = "portal.tests.test_queue.record_call"
CALLS: list[tuple] = []


def record_call(*args, **kwargs):
    """The task the tests enqueue (run inline: the test settings put the queue in sync mode)."""
    CALLS.append((args, kwargs))


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()
    yield
    CALLS.clear()


def test_task_runs_only_after_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue_on_commit(TASK, 7, "abc")

        assert CALLS == []  # nothing before commit

    assert len(callbacks) == 1
    callbacks[0]()  # what commit does
    assert CALLS == [((7, "abc"), {})]


def test_task_runs_once_the_transaction_commits(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit(TASK, 42)

    assert CALLS == [((42,), {})]


def test_nothing_is_enqueued_when_the_transaction_rolls_back(django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        enqueue_on_commit(TASK, 1)
        raise RuntimeError("the change failed")

    assert callbacks == []
    assert CALLS == []


def test_inner_rollback_drops_only_its_own_work(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        enqueue_on_commit(TASK, 1)
        with pytest.raises(RuntimeError), transaction.atomic():
            enqueue_on_commit(TASK, 2)
            raise RuntimeError("inner step failed")

    assert CALLS == [((1,), {})]


@pytest.mark.parametrize(
    "bad",
    [1.5, None, True, {"id": 1}, [1, 2], b"1"],
    ids=["float", "none", "bool", "dict", "list", "bytes"],
)
def test_only_ids_may_be_enqueued(bad, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(TypeError, match="Only ids may be enqueued"):
        enqueue_on_commit(TASK, 1, bad)
    assert callbacks == []


def test_a_model_instance_is_refused_give_its_id():
    group = Group.objects.create(name="Enqueued")
    with pytest.raises(TypeError, match="Only ids may be enqueued, not Group."):
        enqueue_on_commit(TASK, group)


def test_keyword_data_is_refused_because_it_would_travel_to_the_task(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(TypeError, match="member would travel"):
        enqueue_on_commit(TASK, 1, member=Group.objects.create(name="Travelling"))
    assert callbacks == []


def test_the_task_must_be_a_dotted_path():
    with pytest.raises(TypeError, match="dotted path"):
        enqueue_on_commit(record_call, 1)


def test_queue_options_are_passed_to_the_queue_not_the_task(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit(TASK, 5, task_name="offboarding-5", group="leavers", timeout=30)

    assert CALLS == [((5,), {})]


def test_only_ids_reach_the_broker(django_capture_on_commit_callbacks, monkeypatch):
    """With the real ORM broker (not sync mode), the queued package holds the path and the ids only."""
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", "default", raising=False)
    OrmQ.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit(TASK, 9, "x-1", task_name="t-9")

    [queued] = OrmQ.objects.all()
    package = SignedPackage.loads(queued.payload)
    assert (package["func"], package["args"], package["kwargs"], package["name"]) == (TASK, (9, "x-1"), {}, "t-9")
    assert CALLS == []  # queued, not run


def test_a_broker_failure_after_commit_does_not_break_the_caller_or_later_callbacks(
    django_capture_on_commit_callbacks, monkeypatch, caplog
):
    real_async_task = queue.async_task

    def broker_down_for_the_first_task(func, *args, **kwargs):
        if args == (1,):
            raise ConnectionError("broker unreachable")
        return real_async_task(func, *args, **kwargs)

    monkeypatch.setattr(queue, "async_task", broker_down_for_the_first_task)

    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit(TASK, 1)
        enqueue_on_commit(TASK, 2)

    assert CALLS == [((2,), {})]
    assert f"Error calling enqueue_on_commit({TASK}) in on_commit() (broker unreachable)" in caplog.text


def test_one_broker_is_kept_per_process_and_queue(django_capture_on_commit_callbacks, monkeypatch):
    """Enqueueing reuses the process's broker (on Redis, its connection) for the same queue, and a
    queue pointed elsewhere gets its own: the task lands on the queue named at the time."""
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", "default", raising=False)
    monkeypatch.setattr(queue, "_brokers", {})
    OrmQ.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit(TASK, 1)
        enqueue_on_commit(TASK, 2)
    assert len(queue._brokers) == 1
    default = Conf.CLUSTER_NAME
    monkeypatch.setattr(Conf, "CLUSTER_NAME", "elsewhere")
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit(TASK, 3)

    assert len(queue._brokers) == 2
    assert sorted((row.key, SignedPackage.loads(row.payload)["args"]) for row in OrmQ.objects.all()) == [
        ("elsewhere", (3,)),
        (default, (1,)),
        (default, (2,)),
    ]


def test_a_failure_on_the_kept_broker_is_retried_once_on_a_fresh_one(django_capture_on_commit_callbacks, monkeypatch):
    real_async_task = queue.async_task

    def kept_connection_broken(func, *args, **kwargs):
        if "broker" in kwargs:
            raise ConnectionError("Connection closed by server.")
        return real_async_task(func, *args, **kwargs)

    monkeypatch.setattr(queue, "async_task", kept_connection_broken)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit(TASK, 4)

    assert CALLS == [((4,), {})]
    assert queue._brokers == {}  # dropped: the next enqueue makes a new one


# --- enqueue_each_on_commit: many tasks, one broker write ---------------------------------------------


@pytest.fixture(params=["orm", "redis"])
def real_broker(request, monkeypatch, settings):
    """The queue's real broker (not sync mode) on a queue of its own: the ORM broker in the test
    database, or Redis (only where REDIS_URL is set). Yields a function reading what was queued."""
    from django_q.brokers import get_broker

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", "portal-test-each")
    monkeypatch.setattr(queue, "_brokers", {})
    if request.param == "orm":
        monkeypatch.setattr(Conf, "ORM", "default", raising=False)
        OrmQ.objects.all().delete()
        yield lambda: [row.payload for row in OrmQ.objects.filter(key="portal-test-each").order_by("pk")]
        return
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set: the Redis broker is tried on the PostgreSQL + Redis stack")
    monkeypatch.setattr(Conf, "ORM", None, raising=False)
    monkeypatch.setattr(Conf, "REDIS", settings.REDIS_URL, raising=False)
    broker = get_broker()
    broker.delete_queue()
    yield lambda: [p.decode() if isinstance(p, bytes) else p for p in broker.connection.lrange(broker.list_key, 0, -1)]
    broker.delete_queue()


def count_broker_writes(monkeypatch) -> list:
    """Every write the brokers make (an ORM broker INSERT, a Redis RPUSH), recorded as it happens."""
    import redis

    writes = []
    real_execute = redis.Redis.execute_command

    def execute_command(self, *args, **options):
        if args and str(args[0]).upper() == "RPUSH":
            writes.append(("RPUSH", len(args) - 2))
        return real_execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", execute_command)
    real_qs_bulk = QuerySet.bulk_create
    real_qs_create = QuerySet.create

    def bulk_create(self, objs, *args, **kwargs):
        if self.model is OrmQ:
            writes.append(("INSERT", len(objs)))
        return real_qs_bulk(self, objs, *args, **kwargs)

    def create(self, **kwargs):
        if self.model is OrmQ:
            writes.append(("INSERT", 1))
        return real_qs_create(self, **kwargs)

    monkeypatch.setattr(QuerySet, "bulk_create", bulk_create)
    monkeypatch.setattr(QuerySet, "create", create)
    return writes


def test_many_tasks_reach_the_broker_in_one_write(real_broker, django_capture_on_commit_callbacks, monkeypatch):
    """Ten tasks, one package each (the id only), put on the queue by one write: one INSERT of ten
    rows on the ORM broker, one RPUSH of ten packages on Redis (ten writes with enqueue_on_commit)."""
    writes = count_broker_writes(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        queue.enqueue_each_on_commit(TASK, list(range(1, 11)), group="leavers")

    assert len(callbacks) == 1
    assert len(writes) == 1 and writes[0][1] == 10, writes
    packages = [SignedPackage.loads(payload) for payload in real_broker()]
    assert [(p["func"], p["args"], p["kwargs"], p["group"]) for p in packages] == [
        (TASK, (i,), {}, "leavers") for i in range(1, 11)
    ]
    assert len({p["id"] for p in packages}) == 10  # ten tasks, not one
    assert CALLS == []  # queued, not run

    writes.clear()
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(11, 14):
            enqueue_on_commit(TASK, i)
    assert len(writes) == 3  # one at a time, for comparison


def test_each_enqueues_nothing_when_the_transaction_rolls_back(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            queue.enqueue_each_on_commit(TASK, [1, 2, 3])
            raise RuntimeError("rolled back")
        queue.enqueue_each_on_commit(TASK, [])  # nothing to enqueue: no callback

    assert callbacks == [] and CALLS == []


def test_each_runs_every_task_in_sync_mode(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_each_on_commit(TASK, [4, 5, "x-6"])
    assert CALLS == [((4,), {}), ((5,), {}), (("x-6",), {})]


@pytest.mark.parametrize("bad", [[True], [{"id": 1}], [Group(name="x")], [1.5]], ids=["bool", "dict", "model", "float"])
def test_each_refuses_anything_but_ids(bad, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(TypeError, match="Only ids may be enqueued"):
        queue.enqueue_each_on_commit(TASK, [1, *bad])
    with pytest.raises(TypeError, match="would travel to the task"):
        queue.enqueue_each_on_commit(TASK, [1, 2], employee=3)
    assert CALLS == []


def test_each_broker_failure_is_retried_once_then_logged(
    real_broker, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    real_push = queue._push_all
    failures = [ConnectionError("Connection closed by server."), ConnectionError("still down")]

    def push_fails(broker, packages):
        if failures:
            raise failures.pop(0)
        return real_push(broker, packages)

    monkeypatch.setattr(queue, "_push_all", push_fails)
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_each_on_commit(TASK, [1, 2])  # fails, retried once on a fresh broker: fails again
    assert real_broker() == []
    assert f"Error calling enqueue_each_on_commit({TASK}) in on_commit() (still down)" in caplog.text

    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_each_on_commit(TASK, [3, 4])
    assert [SignedPackage.loads(p)["args"] for p in real_broker()] == [(3,), (4,)]


# --- BulkOrmBroker: the ORM broker taking several messages with one statement --------------------------


@pytest.fixture
def bulk_broker(monkeypatch):
    monkeypatch.setattr(Conf, "ORM", "default", raising=False)
    monkeypatch.setattr(Conf, "BULK", 3)
    monkeypatch.setattr(Conf, "POLL", 0.01)
    OrmQ.objects.all().delete()
    return queue.BulkOrmBroker(list_key="portal-test-bulk")


def test_bulk_broker_takes_the_oldest_messages_with_one_statement(bulk_broker):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ids = [bulk_broker.enqueue(f"message-{i}") for i in range(5)]
    OrmQ.objects.create(key="another-queue", payload="not ours", lock=timezone.now())

    with CaptureQueriesContext(connection) as queries:
        first = bulk_broker.dequeue()
    assert first == [(ids[0], "message-0"), (ids[1], "message-1"), (ids[2], "message-2")]
    assert len(queries) == 1, [q["sql"] for q in queries.captured_queries]  # django-q2's own: 1 + 3
    assert bulk_broker.dequeue() == [(ids[3], "message-3"), (ids[4], "message-4")]
    assert bulk_broker.dequeue() is None  # all taken (locked until `retry` seconds from now)
    with CaptureQueriesContext(connection) as queries:
        for ack_id, _ in first:
            bulk_broker.acknowledge(ack_id)
    assert len(queries) == 3, [q["sql"] for q in queries.captured_queries]  # one DELETE each
    assert sorted(OrmQ.objects.values_list("payload", flat=True)) == ["message-3", "message-4", "not ours"]
    bulk_broker.acknowledge(first[0][0])  # again: nothing left to delete, no error


def test_bulk_broker_hands_out_again_a_message_not_acknowledged_in_time(bulk_broker, monkeypatch):
    [message_id] = [bulk_broker.enqueue("message")]
    assert bulk_broker.dequeue() == [(message_id, "message")]
    assert bulk_broker.dequeue() is None
    OrmQ.objects.filter(pk=message_id).update(lock=timezone.now() - datetime.timedelta(seconds=1))  # retry passed
    assert bulk_broker.dequeue() == [(message_id, "message")]


@pytest.mark.django_db(transaction=True)
def test_bulk_broker_gives_each_message_to_one_of_two_pushers(bulk_broker):
    """Two pushers at once (two hosts): every message taken once, none twice."""
    from django.db import connections

    from portal.testing.concurrency import run_at_once

    if connections["default"].vendor != "postgresql":
        pytest.skip("SQLite serialises writers: the race needs PostgreSQL")
    ids = {bulk_broker.enqueue(f"m-{i}") for i in range(30)}

    def drain():
        taken = []
        try:
            while batch := bulk_broker.dequeue():
                taken += [pk for pk, _ in batch]
        finally:
            connections.close_all()
        return taken

    outcomes = run_at_once(drain, drain)
    taken = [pk for outcome in outcomes for pk in outcome[1]]
    assert sorted(taken) == sorted(ids)


# --- A task acknowledging its message in its outcome's transaction (ORM broker) ----------------------------


@pytest.fixture
def delivery(bulk_broker, monkeypatch):
    """A message taken by the pusher, and the package the worker runs it from (as django-q2 hands it over)."""
    monkeypatch.setattr(queue, "_broker", lambda cluster: bulk_broker)
    bulk_broker.enqueue("message")
    [(ack_id, _)] = bulk_broker.dequeue()
    package = {"ack_id": ack_id, "success": True}
    queue.delivery_started(task=package)  # django-q2's pre_execute, in the worker
    yield package
    queue.delivery_finished(task={})


def test_a_message_acknowledged_with_the_outcome_goes_at_commit_and_the_monitor_leaves_it(
    delivery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        assert queue.delivery_acknowledge() is True
    assert not OrmQ.objects.filter(pk=delivery["ack_id"]).exists()
    queue.delivery_finished(task=delivery)  # post_execute_in_worker: before the monitor sees the result
    assert "ack_id" not in delivery  # so the monitor does not delete it a second time


def test_a_message_acknowledged_in_a_rolled_back_transaction_stays_for_the_monitor(
    delivery, django_capture_on_commit_callbacks
):
    ack_id = delivery["ack_id"]
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        assert queue.delivery_acknowledge() is True
        raise RuntimeError("the outcome failed to commit")
    assert OrmQ.objects.filter(pk=ack_id).exists()
    queue.delivery_finished(task=delivery)
    assert delivery["ack_id"] == ack_id  # the monitor acknowledges it, as django-q2 does


def test_no_message_to_acknowledge_once_the_task_is_over_nor_in_sync_mode(delivery):
    queue.delivery_finished(task=delivery)  # the task is over: nothing was acknowledged with it
    assert "ack_id" in delivery  # the monitor acknowledges it
    with transaction.atomic():
        assert queue.delivery_acknowledge() is False
    queue.delivery_started(task={"func": "a.task", "args": ()})  # sync mode: no message
    with transaction.atomic():
        assert queue.delivery_acknowledge() is False


def test_the_redis_broker_has_no_message_to_acknowledge(monkeypatch):
    from django_q.brokers.redis_broker import Redis

    monkeypatch.setattr(queue, "_broker", lambda cluster: Redis.__new__(Redis))
    queue.delivery_started(task={"ack_id": "a redis message id"})
    with transaction.atomic():
        assert queue.delivery_acknowledge() is False
    queue.delivery_finished(task={})
