"""Emails exactly once, against a real SMTP server on 127.0.0.1 (aiosmtpd, `portal.testing.smtp_server`).

The server counts every command (MAIL, RCPT, DATA) and every message it accepted. What is proved:
- a committed change's email reaches the server once, with the row's Message-ID; a rolled-back one
  never opens a connection;
- a task delivered twice sends once; a delivery presumed dead and taken over sends nothing, even
  when it wakes up (the hand-over gate);
- refusals: for good (550) fails the row with the server's words, a temporary one (451) or a
  server that is down retries after a backoff, and the retry sends once;
- a connection that breaks after the message went out leaves it `unconfirmed`, never re-sent;
- a real worker SIGKILLed while the server holds its DATA answer (the server has the message):
  after a restart, redeliveries and the sweeper, the server still has exactly one message; killed
  while the server holds a recipient (nothing delivered yet): after the sweeper, exactly one.

The worker tests run on the suite's stack (SQLite + ORM broker with SQLITE_TEST_PATH naming a file,
or PostgreSQL + Redis) and use the project's worker settings (`config.worker_settings`).
"""

import datetime
import os
import socket
import threading

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections, transaction
from django.utils import timezone

from portal.mail import EmailNotSent, _outbox_write, email_send, email_send_on_commit, outbox_deliver, outbox_sweep
from portal.models import OutboundEmail
from portal.testing.worker import Deadlines, QCluster, enqueue_to, shareable_database_reason, wait_for

CONTEXT = {
    "employee": {"first_name": "Erin"},
    "entitlement": {"application": {"name": "GitHub"}, "level": "write"},
    "url": "http://portal.example/access/request/",
}
Status = OutboundEmail.Status


def notice(**extra) -> OutboundEmail:
    return email_send_on_commit(template="access_expiring", to=["erin@example.com"], context=CONTEXT, **extra)


def later(seconds: float) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=seconds)


def past_claim_deadline() -> datetime.datetime:
    return later(django_settings.EMAIL_OUTBOX["CLAIM_DEADLINE"].total_seconds() + 5)


class Boom(Exception):
    pass


# --- In this process ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_committed_email_reaches_the_server_once_with_the_rows_message_id(smtp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        row = notice()
    row.refresh_from_db()
    assert row.status == Status.SENT
    [received] = smtp.messages
    assert received.recipients == ["erin@example.com"]
    assert received.sender == django_settings.DEFAULT_FROM_EMAIL
    assert received.message_id == row.message_id
    assert received.subject == "Your access to GitHub ends soon"
    assert "http://portal.example/access/request/" in received.text
    assert smtp.commands == ["MAIL", "RCPT", "DATA"]


@pytest.mark.django_db
def test_a_rolled_back_change_never_talks_to_the_server(smtp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Boom), transaction.atomic():
        notice()
        raise Boom
    assert smtp.commands == [] and smtp.messages == []
    assert OutboundEmail.objects.count() == 0


@pytest.mark.django_db
def test_a_task_delivered_twice_sends_once(smtp):
    row = notice()
    assert [outbox_deliver(email_id=row.pk) for _ in range(3)] == ["sent", "not-claimed", "not-claimed"]
    assert len(smtp.messages) == 1 and smtp.commands.count("MAIL") == 1


@pytest.mark.django_db
def test_a_refusal_for_good_fails_the_email_with_the_servers_words(smtp, django_capture_on_commit_callbacks):
    smtp.refuse("RCPT", "550 5.1.1 No such user")
    row = notice()
    assert outbox_deliver(email_id=row.pk) == "failed"
    row.refresh_from_db()
    assert row.status == Status.FAILED and row.handed_at is None
    assert "erin@example.com refused (550 5.1.1 No such user)" in row.last_error
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_sweep(now=later(24 * 3600))["enqueued"] == 0  # failed is final
    assert smtp.messages == []


@pytest.mark.django_db
def test_a_temporary_refusal_is_retried_after_a_backoff_and_sent_once(smtp, django_capture_on_commit_callbacks):
    smtp.refuse("RCPT", "451 4.3.0 Try again later")
    row = notice()
    assert outbox_deliver(email_id=row.pk) == "retry"
    row.refresh_from_db()
    assert row.status == Status.PENDING and "451" in row.last_error
    retry_at = row.next_attempt_at
    assert retry_at > timezone.now()
    smtp.behave()
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_sweep(now=retry_at - datetime.timedelta(seconds=1))["enqueued"] == 0
        assert outbox_sweep(now=retry_at + datetime.timedelta(seconds=1))["enqueued"] == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (Status.SENT, 2, "")
    assert len(smtp.messages) == 1


@pytest.mark.django_db
def test_a_server_that_is_down_is_retried(smtp, settings):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = probe.getsockname()[1]
    row = notice()
    assert outbox_deliver(email_id=row.pk) == "retry"
    row.refresh_from_db()
    assert row.status == Status.PENDING and "ConnectionRefusedError" in row.last_error


@pytest.mark.django_db
def test_a_connection_broken_after_the_message_went_out_is_unconfirmed_and_never_sent_again(
    smtp, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_TIMEOUT = 1
    smtp.hold("DATA")  # the server has the message but does not say so
    row = notice()
    assert outbox_deliver(email_id=row.pk) == "unconfirmed"
    smtp.release()
    row.refresh_from_db()
    assert row.status == Status.UNCONFIRMED and row.handed_at is not None
    assert "look up its Message-ID" in row.last_error
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_sweep(now=later(24 * 3600)) == {"unconfirmed": 0, "released": 0, "failed": 0, "enqueued": 0}
    assert outbox_deliver(email_id=row.pk) == "not-claimed"
    assert len(smtp.messages) == 1


@pytest.mark.django_db
def test_email_send_refused_raises_in_plain_words_and_its_key_retries_once(smtp):
    smtp.refuse("MAIL", "554 5.7.1 Sender rejected")
    args = {"template": "access_expiring", "to": ["erin@example.com"], "context": CONTEXT, "key": "expiry:1"}
    with pytest.raises(
        EmailNotSent, match=r"“Your access to GitHub ends soon” to erin@example.com was not sent: .*554"
    ):
        email_send(**args)
    assert OutboundEmail.objects.get().status == Status.FAILED
    smtp.behave()
    email_send(**args)
    email_send(**args)
    row = OutboundEmail.objects.get()
    assert row.status == Status.SENT
    assert len(smtp.messages) == 1


# --- Two deliveries at once -----------------------------------------------------------------------


@pytest.fixture
def file_db():
    """A database another thread or process can share (a file or a server); skipped otherwise, except in CI."""
    reason = shareable_database_reason(connection.settings_dict)
    if reason:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI must run this test: {reason}")
        pytest.skip(reason)


@pytest.mark.django_db(transaction=True)
def test_a_delivery_presumed_dead_and_taken_over_sends_nothing_when_it_wakes(file_db, smtp):
    """The first delivery stalls at RCPT past the claim deadline; the sweeper hands the email to a second,
    which sends it; then the first wakes up: the hand-over gate stops it before DATA."""
    # The row as `email_send_on_commit` writes it, without its task (here, outside a transaction,
    # the sync queue would run that at once): the first delivery below is the task.
    row, _ = _outbox_write(
        template="access_expiring", to=["erin@example.com"], context=CONTEXT, html=False, reply_to_it=True, key=None
    )
    smtp.hold("RCPT", times=1)
    outcome = {}

    def first() -> None:
        try:
            outcome["first"] = outbox_deliver(email_id=row.pk)
        finally:
            connections.close_all()

    thread = threading.Thread(target=first, daemon=True)
    thread.start()
    smtp.wait_held("RCPT")
    # The sweeper presumes the silent claim dead, releases it and enqueues it: the sync queue delivers it here.
    assert outbox_sweep(now=past_claim_deadline())["released"] == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.SENT, 2)
    smtp.release()
    thread.join(timeout=30)
    assert outcome["first"] == "superseded"
    assert len(smtp.messages) == 1
    assert smtp.commands.count("MAIL") == 2 and smtp.commands.count("DATA") == 1


# --- A real worker, SIGKILLed mid-send --------------------------------------------------------------

# timeout < retry (django-q); the worker's SMTP timeout below its task timeout.
DEADLINES = Deadlines(running=6, queued=8, backoff=0.2, timeout=4, retry=5)


@pytest.fixture
def mail_worker(file_db, settings, smtp, tmp_path, worker_settings_module):
    """A real qcluster (one worker process) on this test database and broker, sending to `smtp`."""
    worker = QCluster(
        name=f"portal_mail_{os.getpid()}",
        database=connection.settings_dict,
        settings_module=worker_settings_module,
        redis_url=settings.REDIS_URL,
        workers=1,
        deadlines=DEADLINES,
        log_path=tmp_path / "qcluster.log",
        env={**smtp.env(), "EMAIL_TIMEOUT": "3"},
    )
    try:
        with worker, enqueue_to(worker):
            yield worker
    finally:
        smtp.release()
        print(f"--- qcluster log ---\n{worker.log_tail(40)}")


def _queue_drained(worker) -> bool:
    """The ORM broker has no message left for the worker (it redelivers an unacknowledged one after `retry`)."""
    if worker.redis_url:
        return True  # Redis drops a message in flight when its worker dies: nothing comes back
    from django_q.models import OrmQ

    return not OrmQ.objects.filter(key=worker.name).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_killed_after_the_server_has_the_message_does_not_send_it_twice(mail_worker, smtp):
    smtp.hold("DATA")
    with transaction.atomic():
        row = notice()
    smtp.wait_held("DATA")  # the server has the message; the worker waits for "250"
    assert len(smtp.messages) == 1
    mail_worker.kill()
    smtp.release()
    mail_worker.start()
    # The ORM broker hands the unacknowledged task to the new worker: it finds nothing to claim.
    wait_for(lambda: _queue_drained(mail_worker), timeout=30, message="the task was not redelivered")
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.SENDING, 1) and row.handed_at is not None
    assert outbox_sweep(now=past_claim_deadline())["unconfirmed"] == 1
    assert outbox_sweep(now=later(24 * 3600))["enqueued"] == 0
    row.refresh_from_db()
    assert row.status == Status.UNCONFIRMED
    assert len(smtp.messages) == 1 and smtp.commands == ["MAIL", "RCPT", "DATA"]
    assert smtp.messages[0].message_id == row.message_id


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_killed_before_anything_was_delivered_is_sent_once_after_the_sweep(mail_worker, smtp):
    smtp.hold("RCPT", times=1)
    with transaction.atomic():
        row = notice()
    smtp.wait_held("RCPT")  # sender given, recipient not yet answered: nothing can be delivered
    mail_worker.kill()
    smtp.release()
    mail_worker.start()
    wait_for(lambda: _queue_drained(mail_worker), timeout=30, message="the task was not redelivered")
    row.refresh_from_db()
    assert (row.status, row.handed_at) == (Status.SENDING, None)  # the redelivery found the claim fresh
    assert outbox_sweep(now=past_claim_deadline()) == {"unconfirmed": 0, "released": 1, "failed": 0, "enqueued": 1}
    wait_for(
        lambda: OutboundEmail.objects.filter(pk=row.pk, status=Status.SENT).exists(),
        timeout=30,
        message="the swept email was not sent",
    )
    row.refresh_from_db()
    assert row.attempts == 2
    assert len(smtp.messages) == 1 and smtp.messages[0].message_id == row.message_id
    assert smtp.commands == ["MAIL", "RCPT", "MAIL", "RCPT", "DATA"]
