"""Event hooks out: lifecycle events told to subscribers (`EventSubscriber`) as signed POSTs, through an outbox.

`event_emit` writes one `EventDelivery` per subscriber of the event inside the caller's transaction (a
change that rolls back tells nobody) and enqueues `portal.tasks.event_deliver(id)` on commit. A delivery
claims its row, POSTs the stored body signed like the webhook connector (`portal.signing`), and records
the answer: 2xx delivered; 5xx, 408, 425, 429 or no answer retried with backoff (by the sweeper) until
`PORTAL_EVENT_MAX_ATTEMPTS`; any other 4xx failed at once (IT fixes the receiver or the secret and sends
it again from the admin).

Exactly once per event id, with the receiver's help: HTTP cannot tell "sent, answer lost" from "not
sent", so a worker killed between the POST and marking the row leaves it `sending`; the sweeper sends it
again after `CLAIM_DEADLINE`, with the same event id in `X-Portal-Idempotency-Key` and the same body.
A receiver applies each event id once and answers a repeat as the first time.

Imports no Portal app: the apps call `event_emit` where their changes happen.
"""

import datetime
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from portal.audit import audit_record
from portal.models import AuditEvent, EventDelivery, EventSubscriber, EventType
from portal.queue import enqueue_on_commit
from portal.signing import sign

logger = logging.getLogger(__name__)

DELIVER_TASK = "portal.tasks.event_deliver"
USER_AGENT = "Portal-Events/1"
MIN_SECRET_LENGTH = 16
SWEEP_BATCH = 500

_local = threading.local()


def _session() -> requests.Session:
    """This thread's HTTP session (keep-alive to each receiver); a forked worker makes its own."""
    if getattr(_local, "pid", None) != os.getpid():
        _local.session, _local.pid = requests.Session(), os.getpid()
    return _local.session


def _setting(name: str):
    return settings.EVENT_HOOKS[name]


# --- Subscribers ------------------------------------------------------------------------------------


def event_subscriber_check(subscriber: EventSubscriber) -> None:
    """Refuse (ValidationError by field) a subscriber without events, without a usable secret, or with both
    a secret and an environment variable."""
    errors = {}
    events = subscriber.events
    if not isinstance(events, list) or not events:
        errors["events"] = "Choose at least one event."
    elif unknown := sorted(set(events) - set(EventType.values)):
        errors["events"] = f"Unknown events: {', '.join(unknown)}. The events are {', '.join(EventType.values)}."
    if subscriber.secret and subscriber.secret_env:
        errors["secret_env"] = "Give the secret or the name of its environment variable, not both."
    elif subscriber.secret_env:
        if not os.environ.get(subscriber.secret_env):
            errors["secret_env"] = f"The environment variable {subscriber.secret_env} is not set in this process."
    elif not subscriber.secret:
        errors["secret"] = "Give the secret shared with the receiver (or the name of an environment variable)."
    elif len(subscriber.secret) < MIN_SECRET_LENGTH:
        errors["secret"] = f"The secret must be at least {MIN_SECRET_LENGTH} characters long."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def event_subscriber_save(*, subscriber: EventSubscriber, acting_user) -> EventSubscriber:
    """Create or change a subscriber (checked first), with an audit event naming its URL and events (never
    the secret). Where Portal's lifecycle events go is security-relevant: each change is on the record."""
    subscriber.full_clean()
    event_subscriber_check(subscriber)
    created = subscriber.pk is None
    subscriber.save()
    audit_record(
        action=AuditEvent.Action.SUBSCRIBER_CHANGED,
        target=subscriber,
        acting_user=acting_user,
        detail={
            "created": created,
            "url": subscriber.url,
            "events": subscriber.events,
            "active": subscriber.active,
            "secret_env": subscriber.secret_env,
        },
    )
    return subscriber


@transaction.atomic
def event_subscriber_delete(*, subscriber: EventSubscriber, acting_user) -> None:
    """Delete a subscriber and its delivery log, on the record."""
    audit_record(
        action=AuditEvent.Action.SUBSCRIBER_DELETED,
        target=subscriber,
        acting_user=acting_user,
        detail={"url": subscriber.url, "events": subscriber.events},
    )
    subscriber.delete()


# --- Emitting ---------------------------------------------------------------------------------------


def event_emit(
    *, event_type: str, data: dict | Callable[[], dict], occurred_at: datetime.datetime | None = None
) -> uuid.UUID | None:
    """Tell every active subscriber of `event_type` about it, once the current transaction commits.

    Writes one delivery row per subscriber now, in the caller's transaction (rolled back with it), and
    enqueues their sending on commit. `data` (a dict, or a function making it, called only when someone
    subscribes) must be JSON-serialisable; dates and decimals become text. One query when nobody
    subscribes. Returns the event id, or None when nobody subscribes.
    """
    ids = event_emit_many(
        event_type=event_type, data=lambda: [data() if callable(data) else data], occurred_at=occurred_at
    )
    return ids[0] if ids else None


def event_emit_many(
    *, event_type: str, data: Callable[[], list[dict]], occurred_at: datetime.datetime | None = None
) -> list[uuid.UUID]:
    """`event_emit` for many events of one type at once (an import's joiners): one event per item of `data()`.

    `data` is called only when someone subscribes; the deliveries are inserted together. One query
    when nobody subscribes. Returns the event ids, in the order of the items (none when nobody subscribes).
    """
    if event_type not in EventType.values:
        raise ValueError(f"Unknown event type {event_type!r}; the types are {', '.join(EventType.values)}.")
    subscribers = [
        pk
        for pk, events in EventSubscriber.objects.filter(active=True).values_list("pk", "events")
        if isinstance(events, list) and event_type in events
    ]
    if not subscribers:
        return []
    occurred_at = occurred_at or timezone.now()
    due = timezone.now() + _setting("QUEUED_DEADLINE")
    event_ids, deliveries = [], []
    for item in data():
        event_id = uuid.uuid4()
        body = {
            "event": event_type,
            "event_id": str(event_id),
            "idempotency_key": str(event_id),
            "occurred_at": occurred_at.isoformat(),
            "data": item,
        }
        payload = json.loads(json.dumps(body, cls=DjangoJSONEncoder))
        event_ids.append(event_id)
        deliveries.extend(
            EventDelivery(
                subscriber_id=pk, event_id=event_id, event_type=event_type, payload=payload, next_attempt_at=due
            )
            for pk in subscribers
        )
    rows = EventDelivery.objects.bulk_create(deliveries, batch_size=500)
    for row in rows:
        if row.pk is None:  # databases that do not return ids from a bulk insert
            row.pk = EventDelivery.objects.get(subscriber_id=row.subscriber_id, event_id=row.event_id).pk
        enqueue_on_commit(DELIVER_TASK, row.pk)
    return event_ids


# --- Delivering -------------------------------------------------------------------------------------


def event_body(delivery: EventDelivery) -> bytes:
    """The bytes POSTed: the stored payload, sorted keys, no white space; the same on every attempt."""
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _secret(subscriber: EventSubscriber) -> str:
    if subscriber.secret_env:
        return os.environ.get(subscriber.secret_env, "")
    return subscriber.secret


def _backoff(attempts: int) -> datetime.timedelta:
    return min(_setting("BACKOFF_BASE") * (2 ** max(attempts - 1, 0)), _setting("BACKOFF_MAX"))


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return (text[:limit] + "…") if len(text) > limit else (text or "(empty body)")


def _post(delivery: EventDelivery, secret: str) -> requests.Response:
    body = event_body(delivery)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Portal-Event": delivery.event_type,
        "X-Portal-Event-Id": str(delivery.event_id),
        "X-Portal-Idempotency-Key": str(delivery.event_id),
        "X-Portal-Delivery-Attempt": str(delivery.attempts),
        "X-Portal-Timestamp": timestamp,
        "X-Portal-Signature": sign(secret, timestamp, body),
    }
    return _session().post(
        delivery.subscriber.url, data=body, headers=headers, timeout=_setting("TIMEOUT"), allow_redirects=False
    )


def _mark_delivered(mine, code: int) -> None:
    """Record the receiver's 2xx. A worker killed before this leaves the row `sending`: sent again, same id."""
    mine.filter(status=EventDelivery.Status.SENDING).update(
        status=EventDelivery.Status.DELIVERED, delivered_at=timezone.now(), response_code=code, last_error=""
    )


def event_deliver(*, delivery_id: int, now: datetime.datetime | None = None) -> str:
    """Send one delivery: claim, POST, record. Safe to call any number of times, at once.

    Returns "delivered"; "not-claimed" (not pending and due: another attempt has it, or it is finished);
    "retry" (no answer, or 5xx/408/425/429: pending again after a backoff, for the sweeper); "failed"
    (another answer, no secret, or attempts used up).
    """
    Status = EventDelivery.Status
    now = now or timezone.now()
    if not EventDelivery.objects.filter(pk=delivery_id, status=Status.PENDING).update(
        status=Status.SENDING, claimed_at=now, last_attempt_at=now, attempts=F("attempts") + 1
    ):
        return "not-claimed"
    delivery = EventDelivery.objects.select_related("subscriber").get(pk=delivery_id)
    # `attempts` names this claim: an attempt the sweeper presumed dead changes nothing when it wakes up.
    mine = EventDelivery.objects.filter(pk=delivery_id, attempts=delivery.attempts)
    secret = _secret(delivery.subscriber)
    if not secret:
        mine.update(
            status=Status.FAILED,
            last_error=f"No secret to sign with (is {delivery.subscriber.secret_env or 'the secret'} set?).",
        )
        return "failed"
    code, error, retryable = None, "", True
    try:
        response = _post(delivery, secret)
    except requests.RequestException as exc:
        error = f"Attempt {delivery.attempts}: {delivery.subscriber.url} did not answer: {type(exc).__name__}: {exc}"
    else:
        code = response.status_code
        if 200 <= code < 300:
            _mark_delivered(mine, code)
            return "delivered"
        retryable = code >= 500 or code in (408, 425, 429)
        error = f"Attempt {delivery.attempts}: HTTP {code}: {_excerpt(response.text)}"
    last = not retryable or delivery.attempts >= _setting("MAX_ATTEMPTS")
    fields = (
        {"status": Status.FAILED}
        if last
        else {"status": Status.PENDING, "next_attempt_at": now + _backoff(delivery.attempts)}
    )
    logger.warning("Event delivery %s %s: %s", delivery_id, "failed" if last else "will retry", error)
    mine.filter(status=Status.SENDING).update(response_code=code, last_error=error[:4000], **fields)
    return "failed" if last else "retry"


def event_delivery_retry(*, delivery: EventDelivery) -> bool:
    """IT sends a failed delivery again (same event id); True when it was failed and is queued now."""
    with transaction.atomic():
        if not EventDelivery.objects.filter(pk=delivery.pk, status=EventDelivery.Status.FAILED).update(
            status=EventDelivery.Status.PENDING,
            next_attempt_at=timezone.now() + _setting("QUEUED_DEADLINE"),
            attempts=0,
        ):
            return False
        enqueue_on_commit(DELIVER_TASK, delivery.pk)
    return True


def event_sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Every minute (the "Event delivery sweeper" schedule): make good what a dead worker or a lost message left.

    - A claim silent past `CLAIM_DEADLINE` may or may not have reached the receiver: it is pending again
      (`released`) and sent again with the same event id, or failed once its attempts are used up.
    - A pending delivery that is due (a retry after its backoff, or a first try whose queue message was
      lost) is enqueued again (`enqueued`), at most once per `QUEUED_DEADLINE`.
    """
    Status = EventDelivery.Status
    now = now or timezone.now()
    stale = EventDelivery.objects.filter(status=Status.SENDING, claimed_at__lt=now - _setting("CLAIM_DEADLINE"))
    gave_up = stale.filter(attempts__gte=_setting("MAX_ATTEMPTS")).update(
        status=Status.FAILED, last_error="Every attempt's worker stopped before recording an answer."
    )
    released = stale.update(
        status=Status.PENDING,
        next_attempt_at=now,
        last_error="The worker stopped before recording the answer; sending again with the same event id.",
    )
    due = list(
        EventDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    enqueued = 0
    for pk in due:
        # Bumped first (a conditional update), so two sweeps at once enqueue it once.
        if EventDelivery.objects.filter(pk=pk, status=Status.PENDING, next_attempt_at__lte=now).update(
            next_attempt_at=now + _setting("QUEUED_DEADLINE")
        ):
            enqueue_on_commit(DELIVER_TASK, pk)
            enqueued += 1
    return {"released": released, "failed": gave_up, "enqueued": enqueued}
