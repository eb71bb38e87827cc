"""Event hooks out, against the real webhook peer (portal/testing/webhook_server.py): signed, once per event id."""

import datetime
import hashlib
import hmac
import json

import pytest
from django.db import transaction
from django.test import TestCase
from django.utils import timezone

from accounts.models import EntitlementStatus
from accounts.services import entitlements, provisioning
from accounts.tests.factories import ApplicationFactory, EmployeeFactory, EntitlementFactory
from portal import events
from portal.models import AuditEvent, EventDelivery, EventSubscriber, EventType

pytestmark = pytest.mark.django_db

SECRET = "webhook-test-secret"


@pytest.fixture
def subscriber(webhook_server, it_admin):
    return events.event_subscriber_save(
        subscriber=EventSubscriber(
            name="HR system",
            url=webhook_server.url,
            secret=SECRET,
            events=[EventType.ENTITLEMENT_GRANTED, EventType.ENTITLEMENT_REVOKED],
        ),
        acting_user=it_admin,
    )


def grant(it_admin):
    employee = EmployeeFactory(work_email="ada@example.com", employee_number="E700001")
    app = ApplicationFactory(name="Slack")
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        entitlement = entitlements.entitlement_grant(
            employee=employee, application=app, level="user", acting_user=it_admin
        )
    return entitlement


def test_delivered_once_and_signed_like_the_webhook_connector(subscriber, webhook_server, it_admin):
    entitlement = grant(it_admin)
    delivery = EventDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (EventDelivery.Status.DELIVERED, 1, 200)
    [call] = webhook_server.calls
    assert call.signature_ok and call.applied
    # the signature, checked here by hand too: HMAC-SHA256 over "<timestamp>.<body>"
    expected = hmac.new(
        SECRET.encode(), call.headers["x-portal-timestamp"].encode() + b"." + call.body, hashlib.sha256
    ).hexdigest()
    assert call.headers["x-portal-signature"] == f"sha256={expected}"
    assert call.headers["x-portal-idempotency-key"] == str(delivery.event_id) == call.headers["x-portal-event-id"]
    body = json.loads(call.body)
    assert body["event"] == "entitlement.granted"
    assert body["data"]["entitlement"] == entitlement.pk
    assert body["data"]["employee"] == {"employee_number": "E700001", "work_email": "ada@example.com"}
    # a second delivery of the queue message sends nothing
    assert events.event_deliver(delivery_id=delivery.pk) == "not-claimed"
    assert webhook_server.counts()["received"] == 1


def test_retried_on_5xx_with_backoff_then_delivered(subscriber, webhook_server, it_admin):
    webhook_server.fail_next(2, status=503)
    grant(it_admin)
    delivery = EventDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (EventDelivery.Status.PENDING, 1, 503)
    assert "HTTP 503" in delivery.last_error
    assert delivery.next_attempt_at > timezone.now()  # backoff: not due yet
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert events.event_sweep()["enqueued"] == 0
    later = timezone.now() + datetime.timedelta(hours=2)
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert events.event_sweep(now=later)["enqueued"] == 1  # second attempt: 503 again
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (EventDelivery.Status.PENDING, 2)
    with TestCase.captureOnCommitCallbacks(execute=True):
        events.event_sweep(now=later + datetime.timedelta(hours=2))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (EventDelivery.Status.DELIVERED, 3, 200)
    keys = {call.idempotency_key for call in webhook_server.calls}
    assert keys == {str(delivery.event_id)}  # every attempt the same event id
    assert webhook_server.counts() | {"pings": 0} == {
        "received": 3,
        "applied": 1,
        "absorbed": 0,
        "refused": 2,
        "pings": 0,
    }


def test_a_4xx_fails_at_once_and_it_can_send_again(subscriber, webhook_server, it_admin):
    webhook_server.fail_next(1, status=401, body='{"error": "bad signature"}')
    grant(it_admin)
    delivery = EventDelivery.objects.get()
    assert delivery.status == EventDelivery.Status.FAILED
    assert 'HTTP 401: {"error": "bad signature"}' in delivery.last_error
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert events.event_delivery_retry(delivery=delivery)
    delivery.refresh_from_db()
    assert delivery.status == EventDelivery.Status.DELIVERED


def test_killed_between_send_and_mark_resends_the_same_event_id(subscriber, webhook_server, it_admin, monkeypatch):
    def killed(mine, code):
        raise SystemExit("worker killed after the POST, before marking the row")

    monkeypatch.setattr(events, "_mark_delivered", killed)
    with pytest.raises(SystemExit):
        grant(it_admin)
    delivery = EventDelivery.objects.get()
    assert delivery.status == EventDelivery.Status.SENDING
    assert webhook_server.counts()["applied"] == 1  # the receiver has it
    monkeypatch.undo()
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert events.event_sweep()["released"] == 0  # not yet presumed dead
    later = timezone.now() + datetime.timedelta(minutes=10)
    with TestCase.captureOnCommitCallbacks(execute=True):
        swept = events.event_sweep(now=later)
    assert swept["released"] == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (EventDelivery.Status.DELIVERED, 2)
    calls = webhook_server.calls_with_key(str(delivery.event_id))
    assert len(calls) == 2 and calls[0].body == calls[1].body  # same id, same body
    assert webhook_server.counts()["applied"] == 1 and webhook_server.counts()["absorbed"] == 1


def test_nothing_sent_when_the_change_rolls_back(subscriber, webhook_server, it_admin):
    employee = EmployeeFactory()
    app = ApplicationFactory()
    with TestCase.captureOnCommitCallbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        entitlements.entitlement_grant(employee=employee, application=app, level="user", acting_user=it_admin)
        assert EventDelivery.objects.count() == 1  # written with the change ...
        raise RuntimeError("the change fails after the event was emitted")
    assert EventDelivery.objects.count() == 0  # ... and gone with it
    assert webhook_server.calls == []


def test_only_active_subscribers_of_the_event_get_it(subscriber, webhook_server, it_admin):
    EventSubscriber.objects.create(
        name="Off", url=webhook_server.url, secret=SECRET, events=[EventType.ENTITLEMENT_GRANTED], active=False
    )
    EventSubscriber.objects.create(
        name="Movers only", url=webhook_server.url, secret=SECRET, events=[EventType.EMPLOYEE_MOVED]
    )
    entitlement = grant(it_admin)
    assert list(EventDelivery.objects.values_list("subscriber__name", flat=True)) == ["HR system"]
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        provisioning.entitlement_confirm_revoked(entitlement=entitlement, acting_user=it_admin, reason="left")
    assert sorted(EventDelivery.objects.values_list("event_type", flat=True)) == [
        "entitlement.granted",
        "entitlement.revoked",
    ]
    assert [json.loads(c.body)["event"] for c in webhook_server.calls] == ["entitlement.granted", "entitlement.revoked"]


def test_nobody_subscribed_costs_one_query(django_assert_num_queries):
    with django_assert_num_queries(1):
        assert events.event_emit(event_type=EventType.EMPLOYEE_JOINED, data=lambda: 1 / 0) is None


def test_subscriber_checks_and_audit(it_admin):
    with pytest.raises(Exception, match="at least 16 characters"):
        events.event_subscriber_save(
            subscriber=EventSubscriber(
                name="x", url="https://x.example.com/", secret="short", events=["employee.left"]
            ),
            acting_user=it_admin,
        )
    with pytest.raises(Exception, match="Unknown events: employee.fired"):
        events.event_subscriber_save(
            subscriber=EventSubscriber(
                name="x", url="https://x.example.com/", secret=SECRET, events=["employee.fired"]
            ),
            acting_user=it_admin,
        )
    saved = events.event_subscriber_save(
        subscriber=EventSubscriber(name="x", url="https://x.example.com/", secret=SECRET, events=["employee.left"]),
        acting_user=it_admin,
    )
    audit = AuditEvent.objects.get(action=AuditEvent.Action.SUBSCRIBER_CHANGED, target_id=str(saved.pk))
    assert SECRET not in json.dumps(audit.detail)


def test_lifecycle_services_emit(it_admin, webhook_server):
    """The other events, each from the service where it happens (a leaver's termination, a decided request)."""
    events.event_subscriber_save(
        subscriber=EventSubscriber(name="All", url=webhook_server.url, secret=SECRET, events=list(EventType.values)),
        acting_user=it_admin,
    )
    from offboarding.flows.leaver import employee_terminate

    leaver = EmployeeFactory(status="active", employee_number="E700009")
    with TestCase.captureOnCommitCallbacks(execute=False), transaction.atomic():
        employee_terminate(employee=leaver, last_day=timezone.localdate(), acting_user=it_admin)
    left = EventDelivery.objects.get(event_type=EventType.EMPLOYEE_LEFT)
    assert left.payload["data"]["employee_number"] == "E700009"
    assert left.payload["data"]["last_day"] == timezone.localdate().isoformat()
    EntitlementFactory(status=EntitlementStatus.ACTIVE)  # unrelated rows do not emit (no service)
    assert EventDelivery.objects.filter(event_type=EventType.ENTITLEMENT_GRANTED).count() == 0
