"""Emails: rendered from `templates/emails/<name>.txt` (first line: the subject), with an optional HTML
part from `templates/emails/<name>.html`, kept in the outbox (`portal.models.OutboundEmail`) and
transmitted to the mail server at most once.

Any app may send through here; it imports no app. Links in emails are absolute, built from
`settings.PORTAL_BASE_URL`, so they work from a mail client.

Exactly once, and where it cannot be: SMTP has no idempotency key, and a worker killed after the
server has the message but before its "250 OK" is recorded cannot know whether it went out. So a
delivery claims the row (a conditional update), talks to the server up to the last moment at which
nothing has been delivered (sender and recipients accepted), passes a second conditional update
(`handed_at`: only one delivery ever passes it), then transmits the message and records the answer.
A delivery that dies before that gate is retried (nothing went out); one that dies after it leaves
the row `unconfirmed`, which is never re-sent automatically (at most once in that window of a few
milliseconds) and is shown to IT in the admin with its stable `Message-ID` to look up in the mail
server's log. Re-sending it with the same `Message-ID` would rely on every receiving server
de-duplicating by that header, which common servers do not do: the requirement is "never twice".
"""

import datetime
import logging
import smtplib
from contextlib import suppress

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import sanitize_address
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from portal.models import OutboundEmail
from portal.queue import enqueue_on_commit

logger = logging.getLogger(__name__)

SEND_TASK = "portal.tasks.outbox_send"
# Rows the sweeper enqueues per run; the rest wait for the next minute.
SWEEP_BATCH = 500

UNCONFIRMED_NOTE = (
    "The message was handed to the mail server but its answer was never recorded (the worker stopped or "
    "the connection broke). It may have been delivered, so it is not sent again automatically: look up "
    "its Message-ID in the mail server's log."
)


class EmailNotSent(Exception):
    """`email_send` could not hand the email to the mail server; nothing was sent. The message says why."""


def portal_url(name: str, *args) -> str:
    """The absolute address of the named page, e.g. `portal_url("access:approvals")`."""
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse(name, args=args)


def email_render(*, template: str, context: dict | None = None, html: bool = False) -> tuple[str, str, str]:
    """`(subject, body, html)` of `emails/<template>.txt` (and `.html` with `html`, else "") for `context`.

    Every template also sees `portal_url` (the home page's address) and `it_email`.
    """
    ctx = {"portal_url": settings.PORTAL_BASE_URL.rstrip("/") + "/", "it_email": settings.IT_TEAM_EMAIL}
    ctx.update(context or {})
    text = render_to_string(f"emails/{template}.txt", ctx).lstrip()
    subject, _, body = text.partition("\n")
    html_part = render_to_string(f"emails/{template}.html", ctx) if html else ""
    return subject.removeprefix("Subject:").strip(), body.strip() + "\n", html_part


def _recipients(to: list[str]) -> list[str]:
    recipients: list[str] = []
    for address in to:
        address = (address or "").strip()
        if address and address.lower() not in {a.lower() for a in recipients}:
            recipients.append(address)
    return recipients


def _outbox_write(
    *, template: str, to: list[str], context: dict | None, html: bool, reply_to_it: bool, key: str | None
) -> tuple[OutboundEmail | None, bool]:
    """The outbox row for this email, written in the current transaction: `(row, created)`.

    `(None, False)` when nobody is left to tell. With `key`, an existing row with that key is returned
    as it is (`created` False) and nothing new is written, even by two callers at once.
    """
    recipients = _recipients(to)
    if not recipients:
        return None, False
    if key is not None and (existing := OutboundEmail.objects.filter(key=key).first()) is not None:
        return existing, False
    subject, body, html_part = email_render(template=template, context=context, html=html)
    row = OutboundEmail(
        template=template,
        key=key,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipients="\n".join(recipients),
        reply_to=settings.IT_TEAM_EMAIL if reply_to_it else "",
        subject=subject,
        body=body,
        html=html_part,
        next_attempt_at=timezone.now() + settings.EMAIL_OUTBOX["QUEUED_DEADLINE"],
    )
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        if key is None:
            raise
        return OutboundEmail.objects.get(key=key), False  # a concurrent caller wrote it first
    return row, True


def email_send_on_commit(
    *,
    template: str,
    to: list[str],
    context: dict | None = None,
    html: bool = False,
    reply_to_it: bool = True,
    key: str | None = None,
) -> OutboundEmail | None:
    """Put the email in the outbox within the current transaction; it is sent once that commits.

    Rendered now (the context is read as it is at the call). Nobody is told of a change that rolls
    back: the row goes with it. After commit `portal.tasks.outbox_send(id)` is enqueued; a mail
    server that fails does not undo the change (the email is retried, see `outbox_deliver`), and a
    lost queue message is made good by the sweeper. Returns the row, or None when `to` holds no
    address. With `key` (an idempotency key of the caller's), a second call with it writes nothing.
    """
    row, created = _outbox_write(template=template, to=to, context=context, html=html, reply_to_it=reply_to_it, key=key)
    if created:
        enqueue_on_commit(SEND_TASK, row.pk)
    return row


def email_send(
    *,
    template: str,
    to: list[str],
    context: dict | None = None,
    html: bool = False,
    reply_to_it: bool = True,
    key: str | None = None,
) -> EmailMultiAlternatives | None:
    """Render one email to `to` (empty addresses and repeats dropped) and send it now, through the outbox.

    Returns the message, or None when nobody is left to tell. Raises `EmailNotSent` when the server
    could not be reached or refused it: nothing was sent, the row is `failed`, and the caller decides
    whether to try again (a second call with the same `key` tries that row again; without a key a
    new row is written). With `key`, an email already sent (or handed over) under it is not sent
    again: the message is returned as it was. Replies go to the IT team unless `reply_to_it` is
    False; with `html`, `emails/<template>.html` is the HTML part.

    For the periodic jobs and checklist actions, which run outside a transaction. Inside one, use
    `email_send_on_commit`: a rollback after this call cannot take back an email already sent.
    """
    row, _ = _outbox_write(template=template, to=to, context=context, html=html, reply_to_it=reply_to_it, key=key)
    if row is None:
        return None
    # A row of this key that failed before is tried again (a caller's retry); any other state is left as it is.
    OutboundEmail.objects.filter(pk=row.pk, status=OutboundEmail.Status.FAILED).update(
        status=OutboundEmail.Status.PENDING, attempts=0
    )
    outcome = outbox_deliver(email_id=row.pk, retry_later=False)
    row.refresh_from_db()
    if outcome == "failed":
        raise EmailNotSent(f"The email “{row.subject}” to {', '.join(row.to)} was not sent: {row.last_error}")
    return outbox_message(row)


def outbox_message(email: OutboundEmail) -> EmailMultiAlternatives:
    """The message of an outbox row, with its stable `Message-ID`."""
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.body,
        from_email=email.from_email,
        to=email.to,
        reply_to=[email.reply_to] if email.reply_to else None,
        headers={"Message-ID": email.message_id},
    )
    if email.html:
        message.attach_alternative(email.html, "text/html")
    return message


# --- Delivery -------------------------------------------------------------------------------------


class _NotSent(Exception):
    """Nothing of the message reached the server (or the server refused it): safe to try again."""

    def __init__(self, error: BaseException | str, *, permanent: bool):
        super().__init__(str(error) or type(error).__name__)
        self.permanent = permanent


class _Uncertain(Exception):
    """The message was being transmitted when the connection failed: the server may have it."""


class _TakenOver(Exception):
    """Another delivery took over this one's claim (the sweeper presumed it dead): stop, send nothing."""


def _permanent(exc: BaseException) -> bool:
    """Whether a refusal is for good: an SMTP 5xx answer, or an error no retry can fix (a bad header)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    return not isinstance(exc, smtplib.SMTPException | OSError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{address} refused ({code} {reply.decode(errors='replace')})"
            for address, (code, reply) in exc.recipients.items()
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{type(exc).__name__}: {exc.smtp_code} {reply}"
    return f"{type(exc).__name__}: {exc}"


def _transmit(message: EmailMultiAlternatives, *, handover) -> dict:
    """Send `message`, calling `handover()` at the last moment before anything can be delivered.

    `handover()` returns False when this delivery lost its claim: then nothing is sent (`_TakenOver`).
    Raises `_NotSent` (nothing delivered; `permanent` for a refusal for good) or `_Uncertain`.
    Returns the recipients the server refused while accepting others (address → (code, reply)).
    """
    backend = get_connection()
    if not isinstance(backend, SmtpBackend):
        # Console, file or in-memory backends (development, tests): nothing to negotiate first.
        if not handover():
            raise _TakenOver
        try:
            backend.send_messages([message])
        except Exception as exc:  # noqa: BLE001 - whatever it was, part of it may have been written
            raise _Uncertain(_describe(exc)) from exc
        return {}
    try:
        encoding = message.encoding or settings.DEFAULT_CHARSET
        sender = sanitize_address(message.from_email, encoding)
        recipients = [sanitize_address(address, encoding) for address in message.recipients()]
        data = message.message().as_bytes(linesep="\r\n")
        backend.open()
        smtp = backend.connection
        smtp.ehlo_or_helo_if_needed()
        options = [f"size={len(data)}"] if smtp.does_esmtp and smtp.has_extn("size") else []
        code, reply = smtp.mail(sender, options)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        refused = {}
        for address in recipients:
            code, reply = smtp.rcpt(address)
            if code not in (250, 251):
                refused[address] = (code, reply)
        if len(refused) == len(recipients):
            raise smtplib.SMTPRecipientsRefused(refused)
    except Exception as exc:  # noqa: BLE001 - nothing was delivered: say why, and whether to retry
        with suppress(Exception):
            backend.close()
        raise _NotSent(_describe(exc), permanent=_permanent(exc)) from exc
    try:
        if not handover():
            with suppress(Exception):
                smtp.rset()
            raise _TakenOver
        # From here the server may have the message: only its answer says whether it took it.
        try:
            code, reply = smtp.data(data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354): nothing went out
            raise _NotSent(_describe(exc), permanent=_permanent(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - the connection broke mid-message
            raise _Uncertain(_describe(exc)) from exc
        if code != 250:
            error = smtplib.SMTPDataError(code, reply)
            raise _NotSent(_describe(error), permanent=_permanent(error))
        return refused
    finally:
        with suppress(Exception):
            backend.close()


def _backoff(attempts: int) -> datetime.timedelta:
    return min(settings.EMAIL_OUTBOX["BACKOFF_BASE"] * (2 ** max(attempts - 1, 0)), datetime.timedelta(hours=1))


def outbox_deliver(*, email_id: int, retry_later: bool = True, now: datetime.datetime | None = None) -> str:
    """Send one outbox email, once: claim, transmit, record. Safe to call any number of times, at once.

    Returns "sent"; "not-claimed" (not pending: another delivery has it, or it is sent, unconfirmed or
    failed); "retry" (nothing went out: pending again after a backoff, for the sweeper); "failed"
    (refused for good, attempts used up, or any failure without `retry_later`); "unconfirmed"
    (handed over, answer unknown: never re-sent automatically); "superseded" (this delivery was
    presumed dead and another took over before it handed anything over: nothing sent).
    """
    Status = OutboundEmail.Status
    now = now or timezone.now()
    if not OutboundEmail.objects.filter(pk=email_id, status=Status.PENDING).update(
        status=Status.SENDING, claimed_at=now, handed_at=None, attempts=F("attempts") + 1
    ):
        return "not-claimed"
    email = OutboundEmail.objects.get(pk=email_id)
    # `attempts` names this claim: a delivery taken over by a later claim changes nothing.
    mine = OutboundEmail.objects.filter(pk=email_id, attempts=email.attempts)

    def handover() -> bool:
        return bool(mine.filter(status=Status.SENDING, handed_at__isnull=True).update(handed_at=timezone.now()))

    try:
        refused = _transmit(outbox_message(email), handover=handover)
    except _TakenOver:
        return "superseded"
    except _Uncertain as exc:
        logger.warning("Email %s: outcome unknown after handing it over: %s", email_id, exc)
        mine.filter(status=Status.SENDING).update(status=Status.UNCONFIRMED, last_error=f"{UNCONFIRMED_NOTE} ({exc})")
        return "unconfirmed"
    except _NotSent as exc:
        last = exc.permanent or not retry_later or email.attempts >= settings.EMAIL_OUTBOX["MAX_ATTEMPTS"]
        detail = f"Attempt {email.attempts}: {exc}"[:4000]
        logger.warning("Email %s not sent (%s): %s", email_id, "failed" if last else "will retry", detail)
        fields = (
            {"status": Status.FAILED}
            if last
            else {"status": Status.PENDING, "next_attempt_at": now + _backoff(email.attempts)}
        )
        mine.filter(status=Status.SENDING).update(handed_at=None, last_error=detail, **fields)
        return "failed" if last else "retry"
    note = "; ".join(f"{a} refused ({c} {r.decode(errors='replace')})" for a, (c, r) in refused.items())
    # `unconfirmed` too: a slow delivery the sweeper gave up on that did get its answer after all.
    mine.filter(status__in=[Status.SENDING, Status.UNCONFIRMED]).update(
        status=Status.SENT, sent_at=timezone.now(), last_error=note
    )
    return "sent"


def outbox_sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Every minute (the "Email outbox sweeper" schedule): make good what a dead worker or a lost queue
    message left behind. Returns how many rows it touched of each kind.

    - A claim silent past `CLAIM_DEADLINE` that handed nothing over: nothing went out, so it is
      pending again (`released`), or `failed` once its attempts are used up.
    - One that handed the message over: `unconfirmed`, never re-sent (see the module docstring).
    - A pending email due (a retry after its backoff, or a first try whose queue message was lost)
      is enqueued again (`enqueued`), at most once per `QUEUED_DEADLINE`.
    """
    Status = OutboundEmail.Status
    now = now or timezone.now()
    outbox = settings.EMAIL_OUTBOX
    stale = now - outbox["CLAIM_DEADLINE"]
    claimed = OutboundEmail.objects.filter(status=Status.SENDING, claimed_at__lt=stale)
    unconfirmed = claimed.filter(handed_at__isnull=False).update(status=Status.UNCONFIRMED, last_error=UNCONFIRMED_NOTE)
    silent = claimed.filter(handed_at__isnull=True)
    gave_up = silent.filter(attempts__gte=outbox["MAX_ATTEMPTS"]).update(
        status=Status.FAILED,
        last_error="Every attempt's worker stopped before handing the message over; nothing was sent.",
    )
    released = silent.update(
        status=Status.PENDING,
        next_attempt_at=now,
        last_error="The worker stopped before handing the message over; nothing was sent. Trying again.",
    )
    due = list(
        OutboundEmail.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    enqueued = 0
    for pk in due:
        # Bumped first (a conditional update), so two sweeps at once enqueue it once.
        if OutboundEmail.objects.filter(pk=pk, status=Status.PENDING, next_attempt_at__lte=now).update(
            next_attempt_at=now + outbox["QUEUED_DEADLINE"]
        ):
            enqueue_on_commit(SEND_TASK, pk)
            enqueued += 1
    return {"unconfirmed": unconfirmed, "released": released, "failed": gave_up, "enqueued": enqueued}
