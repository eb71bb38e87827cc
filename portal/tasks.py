"""Entry points the queue calls for the ground's own work (the email outbox, event hooks). Ids only; each
calls `portal.mail` or `portal.events`."""

from portal import events, mail


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
