"""The laptop's email backend: each email in full in a file under `var/mail/`, one line on the console.

Django's console backend prints every email whole (headers, text and HTML parts), which buries the
server's own output in a demo that sends hundreds of them. This one writes them like Django's file
backend (`EMAIL_FILE_PATH`, one file per connection) and logs one line per email: to whom, the
subject, and the file to open for the rest. Production sets `EMAIL_BACKEND` to SMTP.
"""

import logging

from django.core.mail.backends.filebased import EmailBackend as FileBackend

logger = logging.getLogger("portal.email")


class SummaryFileBackend(FileBackend):
    """Writes each message to `EMAIL_FILE_PATH`; logs `Email to …: “subject” (in <file>)` per message."""

    def write_message(self, message):
        super().write_message(message)
        logger.info("Email to %s: “%s” (in %s)", ", ".join(message.recipients()), message.subject, self._get_filename())
