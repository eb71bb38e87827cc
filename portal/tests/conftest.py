"""Fixtures for the ground's tests: a real SMTP server on 127.0.0.1 (`portal.testing.smtp_server`)."""

import pytest


@pytest.fixture
def smtp_server():
    """A fresh `SmtpServer` for this test (nothing held, nothing refused)."""
    from portal.testing.smtp_server import SmtpServer

    with SmtpServer() as server:
        yield server


@pytest.fixture
def smtp(smtp_server, settings):
    """The SMTP server, with Django's SMTP backend pointed at it for this test."""
    smtp_server.django_settings(settings)
    settings.EMAIL_TIMEOUT = 5
    return smtp_server
