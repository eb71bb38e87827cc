"""Entry points the queue calls for the ground's own work (the email outbox, event hooks). Ids only; each
calls `portal.mail` or `portal.events`."""

import logging

from portal import auditchain, events, mail

logger = logging.getLogger(__name__)


def outbox_send(email_id: int) -> str:
    """Send one outbox email (see `portal.mail.outbox_deliver`); a second delivery sends nothing."""
    return mail.outbox_deliver(email_id=email_id)


def outbox_sweep() -> dict:
    """Every minute: retry emails that are due, recover those a dead worker or a lost message left behind."""
    return mail.outbox_sweep()


def event_deliver(delivery_id: int) -> str:
    """Send one event delivery (see `portal.events.event_deliver`); a second delivery sends nothing."""
    return events.event_deliver(delivery_id=delivery_id)


def event_sweep() -> dict:
    """Every minute: retry event deliveries that are due, re-send those a dead worker left unrecorded."""
    return events.event_sweep()


def audit_checkpoint() -> str:
    """Every hour: sign the audit chain's end (`portal.auditchain.audit_checkpoint_create`).

    Without a signing key, or when the events since the last checkpoint do not verify, nothing is
    signed and a warning is logged (the message says what to do); the task itself does not fail.
    """
    try:
        checkpoint, created = auditchain.audit_checkpoint_create()
    except auditchain.AuditChainError as exc:
        logger.warning("%s", exc)
        return str(exc)
    return f"{'Signed' if created else 'Already signed'}: the audit chain at seq {checkpoint.seq}."
