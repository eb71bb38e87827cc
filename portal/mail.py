"""Emails rendered from `templates/emails/<name>.txt` (first line: the subject), with an optional
HTML part from `templates/emails/<name>.html`.

Any app may send through here; it imports no app. Links in emails are absolute, built from
`settings.PORTAL_BASE_URL`, so they work from a mail client.
"""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse


def portal_url(name: str, *args) -> str:
    """The absolute address of the named page, e.g. `portal_url("access:approvals")`."""
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse(name, args=args)


def email_send(
    *, template: str, to: list[str], context: dict | None = None, html: bool = False, reply_to_it: bool = True
) -> EmailMultiAlternatives | None:
    """Render and send one email to `to` (empty addresses dropped). Returns None when nobody is left to tell.

    Replies go to the IT team (unless `reply_to_it` is False). With `html`, `emails/<template>.html`
    is attached as the HTML part.
    """
    recipients = []
    for address in to:
        if address and address.lower() not in {a.lower() for a in recipients}:
            recipients.append(address)
    if not recipients:
        return None
    ctx = {"portal_url": settings.PORTAL_BASE_URL.rstrip("/") + "/", "it_email": settings.IT_TEAM_EMAIL}
    ctx.update(context or {})
    text = render_to_string(f"emails/{template}.txt", ctx).lstrip()
    subject, _, body = text.partition("\n")
    message = EmailMultiAlternatives(
        subject=subject.removeprefix("Subject:").strip(),
        body=body.strip() + "\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        reply_to=[settings.IT_TEAM_EMAIL] if reply_to_it else None,
    )
    if html:
        message.attach_alternative(render_to_string(f"emails/{template}.html", ctx), "text/html")
    message.send()
    return message


def email_send_on_commit(*, template: str, to: list[str], context: dict | None = None) -> None:
    """`email_send` once the surrounding transaction commits: nobody is told of a change that rolled
    back, and a mail server that fails does not undo the change (the error is logged)."""

    def send() -> None:
        email_send(template=template, to=to, context=context)

    send.__qualname__ = f"email_send_on_commit({template})"
    transaction.on_commit(send, robust=True)
