"""Entry points the queue calls for the ground's own work (the email outbox). Ids only; each calls `portal.mail`."""

from portal import mail


def outbox_send(email_id: int) -> str:
    """Send one outbox email (see `portal.mail.outbox_deliver`); a second delivery sends nothing."""
    return mail.outbox_deliver(email_id=email_id)


def outbox_sweep() -> dict:
    """Every minute: retry emails that are due, recover those a dead worker or a lost message left behind."""
    return mail.outbox_sweep()
