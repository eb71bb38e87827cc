"""Accounts' settings, read in one place.

The defaults live in `config/settings.py` (`ACCESS_REQUESTS`, `USAGE_FEEDS`, from environment variables), never
here: this module only reads them, so a missing name is a configuration error, not a silent default.
"""

from django.conf import settings


def access_setting(name: str) -> int:
    """A whole number of days from `settings.ACCESS_REQUESTS` (`APPROVAL_REMINDER_DAYS`, `EXPIRY_NOTICE_DAYS`)."""
    return settings.ACCESS_REQUESTS[name]


def usage_setting(name: str):
    """One of `settings.USAGE_FEEDS` (`UPLOAD_DIR`, `MAX_UPLOAD_MB`, `STALE_AFTER`, `FUTURE_TOLERANCE`)."""
    return settings.USAGE_FEEDS[name]


def scim_setting(name: str) -> int:
    """A bound of the SCIM server, from `settings.SCIM` (`MAX_BODY_BYTES`, `REQUESTS_PER_MINUTE` ...)."""
    return settings.SCIM[name]
