"""Settings for the test suite: fast hashing, in-memory cache and mail, the queue run inline.

DATABASE_URL still chooses the database, so the same suite runs on SQLite and PostgreSQL.
Tests that are about the queue itself switch `Q_CLUSTER["sync"]` off for themselves.
"""

from config.settings import *  # noqa: F401,F403
from config.settings import Q_CLUSTER

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
