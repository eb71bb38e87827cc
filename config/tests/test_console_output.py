"""The laptop's console stays readable: one line per email (the email itself in var/mail/), and the
queue's per-task lines hidden unless asked for."""

import logging
import logging.config

from django.conf import settings
from django.core import mail

from portal.email_backend import SummaryFileBackend


def test_each_email_is_saved_in_full_and_logged_in_one_line(tmp_path, caplog):
    backend = SummaryFileBackend(file_path=str(tmp_path))
    messages = [
        mail.EmailMultiAlternatives(
            f"Your access request #{n}", "Line one.\nLine two.\n" * 20, "portal@example.com", [f"erin{n}@example.com"]
        )
        for n in range(3)
    ]
    messages[0].attach_alternative("<p>HTML part</p>", "text/html")
    with caplog.at_level(logging.INFO, logger="portal.email"):
        assert backend.send_messages(messages) == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "portal.email"]
    assert len(lines) == 3
    assert all("\n" not in line for line in lines)
    (saved,) = tmp_path.iterdir()
    assert lines[0] == f"Email to erin0@example.com: “Your access request #0” (in {saved})"
    text = saved.read_text()
    assert text.count("Subject: Your access request #") == 3 and "HTML part" in text and "Line two." in text


def test_the_laptop_default_is_the_summary_backend_not_the_console_one(tmp_path):
    from config.tests.test_settings import settings_value

    assert settings_value("[s.EMAIL_BACKEND, s.EMAIL_FILE_PATH]", tmp_path) == [
        "portal.email_backend.SummaryFileBackend",
        str(settings.BASE_DIR / "var" / "mail"),
    ]
    assert (
        settings_value("s.LOGGING['loggers']['django-q']['level']", tmp_path, PORTAL_QUEUE_LOG_LEVEL="INFO") == "INFO"
    )


def test_the_queue_logs_only_warnings_by_default():
    """django-q logs two INFO lines per task; the configured level hides them, keeps its warnings."""
    assert settings.LOGGING["loggers"]["django-q"]["level"] == "WARNING"
    logging.config.dictConfig(settings.LOGGING)
    queue = logging.getLogger("django-q")
    assert not queue.isEnabledFor(logging.INFO)
    assert queue.isEnabledFor(logging.WARNING)
    # Django's own lines go to the root handler only (its "django" console handler would print them twice).
    assert logging.getLogger("django").handlers == [] and logging.getLogger("django").propagate
