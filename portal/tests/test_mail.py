"""The email outbox with Django's in-memory mail backend: written in the caller's transaction, sent once.

The same guarantees against a real SMTP server, and with a real worker killed mid-send, are in
`test_mail_smtp.py`.
"""

import datetime
import importlib

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from portal import tasks
from portal.mail import email_send, email_send_on_commit, outbox_deliver, outbox_sweep
from portal.models import OutboundEmail

pytestmark = pytest.mark.django_db

CONTEXT = {
    "employee": {"first_name": "Erin"},
    "entitlement": {"application": {"name": "GitHub"}, "level": "write"},
    "url": "http://portal.example/access/request/",
}


def notice(**extra):
    """An email through the outbox, as services send them (the access-expiry notice)."""
    return email_send_on_commit(template="access_expiring", to=["erin@example.com"], context=CONTEXT, **extra)


class Boom(Exception):
    pass


def test_the_email_is_a_row_of_the_transaction_and_is_sent_once_it_commits(
    mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        row = notice()
        assert row.status == OutboundEmail.Status.PENDING
        assert mailoutbox == []  # nothing goes out before the commit
    assert len(callbacks) == 1
    row.refresh_from_db()
    assert row.status == OutboundEmail.Status.SENT and row.sent_at is not None and row.attempts == 1
    [message] = mailoutbox
    assert message.to == ["erin@example.com"]
    assert message.subject == "Your access to GitHub ends soon" == row.subject
    assert message.reply_to == [settings.IT_TEAM_EMAIL]
    assert message.extra_headers["Message-ID"] == row.message_id
    assert row.message_id.startswith(f"<portal-outbox-{row.pk}.") and row.message_id.endswith("@example.com>")
    assert "http://portal.example/access/request/" in message.body == row.body


def test_a_change_that_rolls_back_leaves_no_email_and_sends_nothing(mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(Boom), transaction.atomic():
        notice()
        raise Boom
    assert callbacks == []
    assert OutboundEmail.objects.count() == 0
    assert mailoutbox == []


def test_a_task_delivered_twice_sends_once(mailoutbox):
    row = notice()
    assert tasks.outbox_send(row.pk) == "sent"
    assert tasks.outbox_send(row.pk) == "not-claimed"
    assert len(mailoutbox) == 1
    row.refresh_from_db()
    assert row.attempts == 1


def test_nobody_to_tell_writes_nothing(mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert email_send_on_commit(template="access_expiring", to=["", None, " "], context=CONTEXT) is None
        assert email_send(template="access_expiring", to=[""], context=CONTEXT) is None
    assert OutboundEmail.objects.count() == 0
    assert mailoutbox == []


def test_repeated_addresses_are_sent_one_copy(mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        email_send_on_commit(
            template="access_expiring", to=["a@example.com", "A@example.com", "b@example.com"], context=CONTEXT
        )
    assert mailoutbox[0].to == ["a@example.com", "b@example.com"]


def test_email_send_sends_now_and_a_second_call_with_its_key_sends_nothing(mailoutbox):
    overdue = {"template": "task_overdue", "to": ["it@example.com"], "context": {"for_it": True, "items": []}}
    first = email_send(**overdue, html=True, reply_to_it=False, key="k-1")
    again = email_send(**overdue, html=True, reply_to_it=False, key="k-1")
    assert len(mailoutbox) == 1
    assert first.extra_headers["Message-ID"] == again.extra_headers["Message-ID"]
    row = OutboundEmail.objects.get()
    assert row.status == OutboundEmail.Status.SENT and row.key == "k-1" and row.reply_to == ""
    assert mailoutbox[0].alternatives[0].mimetype == "text/html"
    assert mailoutbox[0].reply_to == []


def test_email_send_on_commit_with_a_key_writes_one_row(mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = notice(key="expiry:7")
        second = notice(key="expiry:7")
    assert first.pk == second.pk and len(callbacks) == 1
    assert len(mailoutbox) == 1


# --- The sweeper --------------------------------------------------------------------------------


def _later(seconds: float) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=seconds)


def test_a_lost_queue_message_is_made_good_by_the_sweeper_once_it_is_overdue(
    mailoutbox, django_capture_on_commit_callbacks
):
    row = notice()  # its on-commit enqueue is never run: the queue lost it
    deadline = settings.EMAIL_OUTBOX["QUEUED_DEADLINE"].total_seconds()
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_sweep(now=_later(deadline - 5))["enqueued"] == 0  # not overdue yet: its task may still come
    assert mailoutbox == []
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_sweep(now=_later(deadline + 5))["enqueued"] == 1
        assert outbox_sweep(now=_later(deadline + 5))["enqueued"] == 0  # enqueued once per deadline
    assert len(mailoutbox) == 1
    row.refresh_from_db()
    assert row.status == OutboundEmail.Status.SENT


def _claimed_by_a_worker_that_died(row, *, handed_over: bool) -> None:
    """The row as a worker SIGKILLed mid-delivery leaves it (the real kill is in test_mail_smtp.py)."""
    claimed_at = timezone.now()
    OutboundEmail.objects.filter(pk=row.pk).update(
        status=OutboundEmail.Status.SENDING,
        claimed_at=claimed_at,
        attempts=1,
        handed_at=claimed_at if handed_over else None,
    )


def test_a_claim_whose_worker_died_before_handing_over_is_sent_again(mailoutbox, django_capture_on_commit_callbacks):
    row = notice()
    _claimed_by_a_worker_that_died(row, handed_over=False)
    assert outbox_deliver(email_id=row.pk) == "not-claimed"  # a redelivery while the claim is fresh
    deadline = settings.EMAIL_OUTBOX["CLAIM_DEADLINE"].total_seconds()
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_sweep(now=_later(deadline - 5)) == {"unconfirmed": 0, "released": 0, "failed": 0, "enqueued": 0}
        assert outbox_sweep(now=_later(deadline + 5)) == {"unconfirmed": 0, "released": 1, "failed": 0, "enqueued": 1}
    assert len(mailoutbox) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (OutboundEmail.Status.SENT, 2)


def test_a_claim_whose_worker_died_after_handing_over_is_never_sent_again(
    mailoutbox, django_capture_on_commit_callbacks
):
    row = notice()
    _claimed_by_a_worker_that_died(row, handed_over=True)
    deadline = settings.EMAIL_OUTBOX["CLAIM_DEADLINE"].total_seconds()
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_sweep(now=_later(deadline + 5))["unconfirmed"] == 1
        assert outbox_sweep(now=_later(10 * deadline))["enqueued"] == 0
    assert outbox_deliver(email_id=row.pk) == "not-claimed"
    assert mailoutbox == []
    row.refresh_from_db()
    assert row.status == OutboundEmail.Status.UNCONFIRMED
    assert "Message-ID" in row.last_error and "not sent again" in row.last_error


def test_a_claim_that_keeps_dying_fails_after_the_last_attempt(mailoutbox, settings):
    row = notice()
    _claimed_by_a_worker_that_died(row, handed_over=False)
    OutboundEmail.objects.filter(pk=row.pk).update(attempts=settings.EMAIL_OUTBOX["MAX_ATTEMPTS"])
    assert outbox_sweep(now=_later(settings.EMAIL_OUTBOX["CLAIM_DEADLINE"].total_seconds() + 5))["failed"] == 1
    row.refresh_from_db()
    assert row.status == OutboundEmail.Status.FAILED and "nothing was sent" in row.last_error


def test_the_sweeper_is_scheduled_every_minute():
    from django.apps import apps
    from django_q.models import Schedule

    module = importlib.import_module("portal.migrations.0008_outbox_sweeper_schedule")
    module.create_schedule(apps, None)  # idempotent; a flushed database lost the migration's row
    module.create_schedule(apps, None)
    schedule = Schedule.objects.get(name="Email outbox sweeper")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("portal.tasks.outbox_sweep", "I", 1)
    assert tasks.outbox_sweep() == {"unconfirmed": 0, "released": 0, "failed": 0, "enqueued": 0}


# --- The admin: IT reads the outbox -------------------------------------------------------------


def test_it_reads_the_outbox_and_an_unconfirmed_email_shows_its_message_id(client, it_admin):
    row = notice()
    _claimed_by_a_worker_that_died(row, handed_over=True)
    outbox_sweep(now=_later(settings.EMAIL_OUTBOX["CLAIM_DEADLINE"].total_seconds() + 5))
    row.refresh_from_db()
    client.force_login(it_admin)
    listing = client.get(reverse("admin:portal_outboundemail_changelist"), {"status__exact": "unconfirmed"})
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [row]
    assert (
        "erin@example.com" in listing.content.decode() and "Your access to GitHub ends soon" in listing.content.decode()
    )
    page = client.get(reverse("admin:portal_outboundemail_change", args=[row.pk]))
    assert page.status_code == 200
    assert row.message_id.strip("<>") in page.content.decode()
    assert client.post(reverse("admin:portal_outboundemail_change", args=[row.pk]), {}).status_code == 403


def test_staff_without_the_view_permission_cannot_read_the_outbox(client):
    row = notice()
    staff = User.objects.create_user(username="staff-no-perms", password="x", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:portal_outboundemail_changelist")).status_code == 403
    assert client.get(reverse("admin:portal_outboundemail_change", args=[row.pk])).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_outboundemail"))
    assert client.get(reverse("admin:portal_outboundemail_changelist")).status_code == 200
