"""Django settings for Portal.

Every setting that differs between a laptop and production comes from the
environment (see `.env.example`). Safe defaults for a laptop; production
(`DEBUG` off) must set `SECRET_KEY` and `ALLOWED_HOSTS` or start-up fails with
`ImproperlyConfigured`.
"""

import datetime
import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}.")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}.") from exc


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-dev-only-key-do-not-use-in-production"

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
if not ALLOWED_HOSTS:
    if not DEBUG:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off (comma-separated).")
    ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "guardian",
    "simple_history",
    "import_export",
    "django_q",
    "portal",
    # After portal: portal.admin registers the device admins first (django-otp's own, which shows
    # TOTP secrets to anyone who may view the device, then finds the model taken and stays out).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp_webauthn",
    "accounts",
    "assets",
    "offboarding",
    "demo",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "portal.middleware.NulQueryRefusedMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "portal.mfa.SecondFactorRequiredMiddleware",
    "portal.middleware.PrivatePagesMiddleware",
    "portal.middleware.NotFoundPageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

# --- Database -------------------------------------------------------------
# DATABASE_URL selects the database (postgres://..., sqlite:///path). The default
# is an embedded SQLite file tuned for a web server and a worker side by side:
# WAL, synchronous=NORMAL, a busy timeout and IMMEDIATE transactions so writers
# queue instead of failing with "database is locked".
SQLITE_PATH = os.environ.get("SQLITE_PATH", str(BASE_DIR / "var" / "portal.sqlite3"))
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": SQLITE_PATH}}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Persistent, like PostgreSQL's: django-q2 closes non-persistent connections before every task and
    # every broker call, and opening the file again (with the pragmas below) cost ~30 ms a time.
    DATABASES["default"]["CONN_MAX_AGE"] = 60
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=20000;"
        ),
    }
    # Tests use an in-memory database unless SQLITE_TEST_PATH names a file
    # (tests with real worker processes need a file both processes can open).
    if os.environ.get("SQLITE_TEST_PATH"):
        DATABASES["default"]["TEST"] = {"NAME": os.environ["SQLITE_TEST_PATH"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Task queue (django-q2) ----------------------------------------------------
# REDIS_URL switches the broker to Redis; otherwise the ORM broker in the database.
# timeout < retry so a slow task is killed before it is handed out again;
# max_attempts is finite; save_limit=-1 keeps no success rows in django-q's table
# (our own Task rows record outcomes), so saving never prunes on the hot path.
# The ORM broker looks for work every `poll` seconds while the queue is empty (each step of a
# leaver's chain waits for that look: 0.5 s made a deprovisioning wait ~1 s for nothing) and
# takes up to `bulk` tasks per look (`portal.queue.BulkOrmBroker`: one statement reads and locks them).
REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    "name": os.environ.get("Q_CLUSTER_NAME", "portal"),
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 60),
    "retry": env_int("Q_RETRY", 90),
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 5),
    "save_limit": -1,
    "ack_failures": True,
    "catch_up": False,
    "sync": env_bool("Q_SYNC", False),
    "label": "Task queue",
}
if Q_CLUSTER["timeout"] >= Q_CLUSTER["retry"]:
    raise ImproperlyConfigured(
        f"Q_TIMEOUT ({Q_CLUSTER['timeout']} s) must be below Q_RETRY ({Q_CLUSTER['retry']} s): otherwise a task "
        "still running is handed to a second worker."
    )
if Q_CLUSTER["max_attempts"] < 1:
    raise ImproperlyConfigured(f"Q_MAX_ATTEMPTS must be at least 1, not {Q_CLUSTER['max_attempts']}.")
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    # One cache for every process and host: sign-in throttling counts failures there.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    Q_CLUSTER["orm"] = "default"
    # django-q2's ORM broker, taking `bulk` messages with one UPDATE ... RETURNING (see the class).
    Q_CLUSTER["broker_class"] = "portal.queue.BulkOrmBroker"
    Q_CLUSTER["poll"] = env_float("Q_POLL", 0.05)
    Q_CLUSTER["bulk"] = env_int("Q_BULK", Q_CLUSTER["workers"])
    if not 0 < Q_CLUSTER["poll"] <= 10 or Q_CLUSTER["bulk"] < 1:
        raise ImproperlyConfigured(
            f"Q_POLL must be a number of seconds above 0 and at most 10 (not {Q_CLUSTER['poll']}) and "
            f"Q_BULK a whole number of 1 or more (not {Q_CLUSTER['bulk']})."
        )

# --- Lifecycle engine ---------------------------------------------------------------
# Durations as whole numbers from the environment; the engine's deadlines derive from Q_CLUSTER.
LIFECYCLE = {
    # Revocations of a mover's old access wait this many days (a handover period).
    "MOVER_GRACE_DAYS": env_int("PORTAL_MOVER_GRACE_DAYS", 7),
    # A leaver's personal data is anonymised this many days after their last day.
    "RETENTION_DAYS": env_int("PORTAL_RETENTION_DAYS", 365),
    # A leaver has this many days after the cut-off to return hardware before it is overdue.
    "RETURN_DAYS": env_int("PORTAL_RETURN_DAYS", 7),
    # Reminders (overdue tasks, hardware returns, approvals) repeat at most this often, in days.
    "REMINDER_INTERVAL_DAYS": env_int("PORTAL_REMINDER_INTERVAL_DAYS", 2),
    # An automated task is tried this many times before it is failed for IT (a template may say otherwise).
    "MAX_ATTEMPTS": env_int("PORTAL_TASK_MAX_ATTEMPTS", 5),
    # A return link in a leaver's reminder emails (they cannot sign in after the cut-off) works this long.
    "RETURN_LINK_DAYS": env_int("PORTAL_RETURN_LINK_DAYS", 60),
    # A claimed task whose worker is silent this long is presumed dead (must exceed the queue's timeout).
    "RUNNING_DEADLINE": datetime.timedelta(seconds=Q_CLUSTER["timeout"] + 30),
    # A queued task nobody picked up this long is presumed lost by the broker, and enqueued again.
    "QUEUED_DEADLINE": datetime.timedelta(seconds=Q_CLUSTER["retry"] + 30),
    # A failed automated task is tried again after BACKOFF_BASE x 2^(attempts - 1), at most BACKOFF_MAX.
    "BACKOFF_BASE": datetime.timedelta(seconds=30),
    "BACKOFF_MAX": datetime.timedelta(hours=1),
}
# --- Access requests -----------------------------------------------------------------
ACCESS_REQUESTS = {
    # An approval step waiting this many days gets a reminder to its approver, repeated as often.
    "APPROVAL_REMINDER_DAYS": env_int("PORTAL_APPROVAL_REMINDER_DAYS", 2),
    # Holders of time-bound access are told this many days before it ends.
    "EXPIRY_NOTICE_DAYS": env_int("PORTAL_EXPIRY_NOTICE_DAYS", 3),
}
# --- Usage feeds (accounts.services.usage) ---------------------------------------------------
USAGE_FEEDS = {
    # Uploaded sign-in logs wait here for the worker (deleted once read); shared by every worker host.
    "UPLOAD_DIR": os.environ.get("PORTAL_USAGE_UPLOAD_DIR", str(BASE_DIR / "var" / "uploads")),
    # The largest usage file the admin accepts, in megabytes.
    "MAX_UPLOAD_MB": env_int("PORTAL_USAGE_MAX_UPLOAD_MB", 2048),
    # A reading worker silent this long is presumed dead and the import is read again (it reports every second).
    "STALE_AFTER": datetime.timedelta(seconds=env_int("PORTAL_USAGE_STALE_SECONDS", 30)),
    # A queued import nobody picked up this long is presumed lost by the broker, and enqueued again.
    "QUEUED_DEADLINE": datetime.timedelta(seconds=Q_CLUSTER["retry"] + 30),
    # A sign-in more than this far in the future is refused (a clock or format error would pin last use ahead).
    "FUTURE_TOLERANCE": datetime.timedelta(days=1),
}
# --- Event hooks out (portal.events) ----------------------------------------------------------
EVENT_HOOKS = {
    # Deliveries of one event to one subscriber before it is failed for IT (a 4xx answer fails it at once).
    "MAX_ATTEMPTS": env_int("PORTAL_EVENT_MAX_ATTEMPTS", 8),
    # A failed attempt is tried again after BACKOFF_BASE x 2^(attempts - 1), at most BACKOFF_MAX.
    "BACKOFF_BASE": datetime.timedelta(seconds=env_int("PORTAL_EVENT_BACKOFF_SECONDS", 30)),
    "BACKOFF_MAX": datetime.timedelta(hours=1),
    # Seconds a subscriber may take to answer (below Q_TIMEOUT; by default half of it, at most 10).
    "TIMEOUT": env_int("PORTAL_EVENT_TIMEOUT", 0) or max(1, min(10, Q_CLUSTER["timeout"] // 2)),
    # A claim whose worker is silent this long is presumed dead; the event is sent again (same event id).
    "CLAIM_DEADLINE": datetime.timedelta(seconds=Q_CLUSTER["timeout"] + 30),
    # A pending delivery not picked up this long is presumed lost by the broker, and enqueued again.
    "QUEUED_DEADLINE": datetime.timedelta(seconds=Q_CLUSTER["retry"] + 30),
}
if EVENT_HOOKS["TIMEOUT"] >= Q_CLUSTER["timeout"] or EVENT_HOOKS["MAX_ATTEMPTS"] < 1:
    raise ImproperlyConfigured(
        f"PORTAL_EVENT_TIMEOUT ({EVENT_HOOKS['TIMEOUT']} s) must be below Q_TIMEOUT ({Q_CLUSTER['timeout']} s) "
        "and PORTAL_EVENT_MAX_ATTEMPTS at least 1."
    )
# Links in emails start with this. `manage.py serve HOST:PORT` (`make run`) sets it for its web server and
# worker to the address it serves, unless the environment already names one (a proxy's public address).
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "").strip() or "http://127.0.0.1:8000"
if not re.match(r"^https?://[^/\s]+", PORTAL_BASE_URL):
    raise ImproperlyConfigured(f"PORTAL_BASE_URL must be an http:// or https:// address, not {PORTAL_BASE_URL!r}.")
IT_TEAM_EMAIL = os.environ.get("IT_TEAM_EMAIL", "it@example.com")

# --- SCIM server for identity providers (/scim/v2/, accounts/scim) -----------------------
SCIM = {
    # A request body larger than this is refused with 413 before it is read further.
    "MAX_BODY_BYTES": env_int("PORTAL_SCIM_MAX_BODY_BYTES", 256 * 1024),
    # Requests a minute per connection (an Entra ID initial sync sends a few per second).
    "REQUESTS_PER_MINUTE": env_int("PORTAL_SCIM_REQUESTS_PER_MINUTE", 1200),
    # Refused tokens a minute per client address; beyond it 429, and no further audit events.
    "REFUSED_PER_MINUTE": env_int("PORTAL_SCIM_REFUSED_PER_MINUTE", 30),
}
if min(SCIM.values()) < 1:
    raise ImproperlyConfigured(
        "PORTAL_SCIM_MAX_BODY_BYTES, PORTAL_SCIM_REQUESTS_PER_MINUTE and PORTAL_SCIM_REFUSED_PER_MINUTE "
        "must be at least 1."
    )

# --- Sign-in throttling (portal/signin.py, both login pages) ---------------------------
SIGN_IN_THROTTLE = {
    # Failed sign-ins for one username before further attempts for it are refused.
    "FAILURE_LIMIT": env_int("PORTAL_LOGIN_FAILURE_LIMIT", 5),
    # ... and from one client address: higher, since people behind one NAT or office proxy share it.
    "ADDRESS_FAILURE_LIMIT": env_int("PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT", 50),
    # ... counted within this many minutes of the first failure.
    "WINDOW": datetime.timedelta(minutes=env_int("PORTAL_LOGIN_WINDOW_MINUTES", 15)),
    # A locked username or address is refused this many minutes, the right password included.
    "COOLOFF": datetime.timedelta(minutes=env_int("PORTAL_LOGIN_COOLOFF_MINUTES", 15)),
}
if (
    min(SIGN_IN_THROTTLE["FAILURE_LIMIT"], SIGN_IN_THROTTLE["ADDRESS_FAILURE_LIMIT"]) < 1
    or min(SIGN_IN_THROTTLE["WINDOW"], SIGN_IN_THROTTLE["COOLOFF"]).total_seconds() < 60
):
    raise ImproperlyConfigured(
        "PORTAL_LOGIN_FAILURE_LIMIT, PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT, PORTAL_LOGIN_WINDOW_MINUTES and "
        "PORTAL_LOGIN_COOLOFF_MINUTES must be at least 1."
    )


def trusted_proxies(value: str) -> list:
    """`10.0.0.1, 10.1.0.0/16` -> networks; empty -> [] (no proxy trusted: X-Forwarded-For is ignored)."""
    import ipaddress

    networks = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"PORTAL_TRUSTED_PROXIES must be addresses or networks separated by commas, not {part!r}."
            ) from exc
    return networks


# The reverse proxies in front of Portal: only from these is X-Forwarded-For believed (portal/signin.py).
TRUSTED_PROXIES = trusted_proxies(os.environ.get("PORTAL_TRUSTED_PROXIES", ""))
# --- End of sign-in throttling ------------------------------------------------------------

# --- Audit log (hash chain, signed checkpoints: portal/auditchain.py) ----------------
# The Ed25519 key that signs audit checkpoints (32 bytes, base64; `manage.py audit_signing_key` makes
# one). Unset: no checkpoints are made (refused with a message; `check --deploy` warns). Public keys of
# retired signing keys, comma-separated, so their checkpoints still verify after a rotation.
# A malformed key stops start-up here, naming the variable (never printing the value).
from portal.audit_keys import AuditKeyError, signing_key_load, verify_keys_load  # noqa: E402

PORTAL_AUDIT_SIGNING_KEY = os.environ.get("PORTAL_AUDIT_SIGNING_KEY", "").strip()
PORTAL_AUDIT_VERIFY_KEYS = os.environ.get("PORTAL_AUDIT_VERIFY_KEYS", "").strip()
try:
    signing_key_load(PORTAL_AUDIT_SIGNING_KEY)
    verify_keys_load(PORTAL_AUDIT_VERIFY_KEYS)
except AuditKeyError as exc:
    raise ImproperlyConfigured(str(exc)) from exc

# --- Personal data encrypted at rest (portal/crypto.py, portal/fields.py) ----------------
# PORTAL_FIELD_KEYS: comma-separated `id:base64key` (AES-256, 32 bytes): the first writes, the others
# still read until `manage.py field_keys_rotate` has re-encrypted what they wrote. PORTAL_BLIND_INDEX_KEY:
# 32 bytes in base64, the HMAC key of the equality indexes. Not derived from SECRET_KEY, so each rotates
# alone. `manage.py field_key_new` prints a key. Unset with DEBUG on: fixed dev-only keys; with DEBUG off,
# missing or dev keys stop start-up; a malformed key always does, naming the variable (never the value).
from portal.crypto import (  # noqa: E402
    DEV_BLIND_INDEX_KEY,
    DEV_FIELD_KEYS,
    FieldKeyError,
    blind_index_key_load,
    field_keys_load,
)

PORTAL_FIELD_KEYS = os.environ.get("PORTAL_FIELD_KEYS", "").strip()
PORTAL_BLIND_INDEX_KEY = os.environ.get("PORTAL_BLIND_INDEX_KEY", "").strip()
for _name, _dev in (("PORTAL_FIELD_KEYS", DEV_FIELD_KEYS), ("PORTAL_BLIND_INDEX_KEY", DEV_BLIND_INDEX_KEY)):
    if not globals()[_name]:
        if not DEBUG:
            raise ImproperlyConfigured(
                f"{_name} must be set when DEBUG is off: personal data is encrypted with it "
                "(`python manage.py field_key_new` makes a key; see the README, Personal data encrypted at rest)."
            )
        globals()[_name] = _dev
try:
    _field_keys = field_keys_load(PORTAL_FIELD_KEYS)
    _blind_key = blind_index_key_load(PORTAL_BLIND_INDEX_KEY)
except FieldKeyError as exc:
    raise ImproperlyConfigured(str(exc)) from exc
if not DEBUG and (
    set(_field_keys.keys.values()) & set(field_keys_load(DEV_FIELD_KEYS).keys.values())
    or _blind_key == blind_index_key_load(DEV_BLIND_INDEX_KEY)
):
    raise ImproperlyConfigured(
        "PORTAL_FIELD_KEYS or PORTAL_BLIND_INDEX_KEY holds the development key, which is public: "
        "set real keys when DEBUG is off."
    )
del _field_keys, _blind_key, _name, _dev

# --- Auth ----------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
GUARDIAN_RAISE_403 = True
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Without EMAIL_BACKEND set: each email in full in var/mail/, one line per email on the console.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "portal.email_backend.SummaryFileBackend")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "portal@example.com")
# The SMTP backend's server (Django's settings, from the environment).
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
# Seconds an SMTP call may hang; below Q_TIMEOUT, so a stuck server fails the attempt instead of the worker.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 0) or max(1, min(20, Q_CLUSTER["timeout"] // 2))
# HR file imports (accounts.hr_import): files of more rows than BACKGROUND_ROWS are imported by a
# worker with a progress bar; a preview nobody confirms is abandoned (its cells deleted) after
# PREVIEW_MINUTES. Files are read in memory and never stored (FILE_UPLOAD_MAX_MEMORY_SIZE covers them).
HR_IMPORT = {
    "BACKGROUND_ROWS": env_int("PORTAL_IMPORT_BACKGROUND_ROWS", 500),
    "MAX_ROWS": env_int("PORTAL_IMPORT_MAX_ROWS", 50_000),
    "MAX_MEGABYTES": env_int("PORTAL_IMPORT_MAX_MB", 20),
    "PREVIEW_MINUTES": env_int("PORTAL_IMPORT_PREVIEW_MINUTES", 60),
}
FILE_UPLOAD_MAX_MEMORY_SIZE = HR_IMPORT["MAX_MEGABYTES"] * 1024 * 1024
# Progress of long jobs when there is no Redis (portal.progress): numbers only.
PORTAL_PROGRESS_DIR = os.environ.get("PORTAL_PROGRESS_DIR", str(BASE_DIR / "var" / "progress"))
# The outbox (portal.mail): emails are rows, sent by a task, swept every minute.
EMAIL_OUTBOX = {
    # Deliveries of one email before it is failed for IT (a refusal for good fails it at once).
    "MAX_ATTEMPTS": env_int("PORTAL_EMAIL_MAX_ATTEMPTS", 5),
    # A failed attempt is tried again after BACKOFF_BASE x 2^(attempts - 1), at most an hour.
    "BACKOFF_BASE": datetime.timedelta(seconds=60),
    # A claim whose worker is silent this long is presumed dead (the queue kills a task after Q_TIMEOUT).
    "CLAIM_DEADLINE": datetime.timedelta(seconds=Q_CLUSTER["timeout"] + 30),
    # A pending email not picked up this long is presumed lost by the broker, and enqueued again.
    "QUEUED_DEADLINE": datetime.timedelta(seconds=Q_CLUSTER["retry"] + 30),
}
if Q_CLUSTER["timeout"] <= EMAIL_TIMEOUT:
    raise ImproperlyConfigured(f"EMAIL_TIMEOUT ({EMAIL_TIMEOUT} s) must be below Q_TIMEOUT ({Q_CLUSTER['timeout']} s).")

# django-import-export: imports are all-or-nothing; import writes history too.
IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"

# Reverting from history would restore an asset's holder or an entitlement's status outside
# the services that keep check-outs and the audit log in step: history is read-only.
SIMPLE_HISTORY_REVERT_DISABLED = True

# --- HTTPS ---------------------------------------------------------------------------
# Production sits behind HTTPS: cookies are secure, browsers are told to stay on HTTPS (HSTS, sent
# only on HTTPS responses) and, behind a proxy that ends TLS, the proxy's header says a request was
# HTTPS. Redirecting plain HTTP is usually the proxy's job, so it is off unless asked for.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("PORTAL_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
if SECURE_HSTS_SECONDS < 0:
    raise ImproperlyConfigured(f"PORTAL_HSTS_SECONDS must be 0 (off) or more, not {SECURE_HSTS_SECONDS}.")
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("PORTAL_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_SSL_REDIRECT = env_bool("PORTAL_SSL_REDIRECT", False)


def proxy_ssl_header(value: str) -> tuple[str, str] | None:
    """`HTTP_X_FORWARDED_PROTO=https` -> `("HTTP_X_FORWARDED_PROTO", "https")`; empty -> None (no proxy trusted)."""
    value = value.strip()
    if not value:
        return None
    header, sep, expected = (part.strip() for part in value.partition("="))
    if not sep or not expected or re.fullmatch(r"HTTP_[A-Z0-9_]+", header) is None:
        raise ImproperlyConfigured(
            "PORTAL_PROXY_SSL_HEADER must be HEADER=value, the header named as Django names it (HTTP_, "
            f"upper case, underscores), e.g. HTTP_X_FORWARDED_PROTO=https, not {value!r}."
        )
    return header, expected


SECURE_PROXY_SSL_HEADER = proxy_ssl_header(os.environ.get("PORTAL_PROXY_SSL_HEADER", ""))

# --- Second factor (portal.mfa) ----------------------------------------------------------------------
# Staff (and self-service users who enrolled) verify TOTP, a passkey or a recovery code after the
# password, before any page; see README "Second factor".
OTP_TOTP_ISSUER = "Portal"
OTP_WEBAUTHN_RP_NAME = "Portal"
# The relying party is the host the person opened (ALLOWED_HOSTS checks it), and the expected origin
# that host's own origin (portal.mfa.PortalWebAuthnHelper): no second list of addresses to keep in step.
OTP_WEBAUTHN_RP_ID_CALLABLE = "portal.mfa.webauthn_rp_id"
OTP_WEBAUTHN_HELPER_CLASS = "portal.mfa.PortalWebAuthnHelper"
# A passkey is a second factor after the password here, never a way around the password and its throttle.
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False
SILENCED_SYSTEM_CHECKS = [
    # django-otp-webauthn checks a static OTP_WEBAUTHN_ALLOWED_ORIGINS list; Portal's helper derives it.
    "otp_webauthn.E030",
]

# --- REST API (/api/v1/, `api` app) -----------------------------------------------------------------
# JSON only (DRF's browsable pages carry inline script the CSP refuses; the docs are Swagger UI
# from drf-spectacular-sidecar, served from Portal's own static files, no CDN).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.StrictJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.PortalPagination",
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.PerTokenRateThrottle"],
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.PortalAutoSchema",
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Portal API",
    "DESCRIPTION": (
        "Automation for the employee lifecycle. Authenticate with a personal token from /api/tokens/ "
        "(`Authorization: Bearer portal_…`): it acts as you, with your groups and object permissions. "
        "Rows you may not see answer 404. Every POST takes an `Idempotency-Key`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}
PORTAL_API_IDEMPOTENCY_HOURS = env_int("PORTAL_API_IDEMPOTENCY_HOURS", 24)
# Requests a minute per API token (or signed-in user, or address); beyond it 429 with Retry-After.
PORTAL_API_REQUESTS_PER_MINUTE = env_int("PORTAL_API_REQUESTS_PER_MINUTE", 1200)
if PORTAL_API_REQUESTS_PER_MINUTE < 1 or PORTAL_API_IDEMPOTENCY_HOURS < 1:
    raise ImproperlyConfigured("PORTAL_API_REQUESTS_PER_MINUTE and PORTAL_API_IDEMPOTENCY_HOURS must be at least 1.")

# --- Content-Security-Policy (django-csp, on every response) ----------------------------------
# Scripts, styles, images, fonts and form posts only from Portal itself; no plugin, no framing, no
# <base>. No inline script or <style> element runs: Portal's templates have none, and the one inline
# piece of the packages' templates Portal uses is allowed by its exact hash only: django-import-export's
# export page's "Select all" toggle (an onchange handler, hence 'unsafe-hashes'). test_headers.py
# recomputes it from the installed template, so an upgrade that changes it fails there. Style
# attributes (style="...") are allowed: they cannot run script or select other elements, and the
# admin, django-import-export and simple-history set them.
CSP_INLINE_HANDLER_HASHES = ["'sha256-wid4zL8fR53ZYy1ljOepzR77Dn6vWUUxuNnnWWBP3I8='"]  # onSelectToggleChange(event)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", "'unsafe-hashes'", *CSP_INLINE_HANDLER_HASHES],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}
# --- End of Content-Security-Policy -------------------------------------------------------------

# --- Logging ----------------------------------------------------------------------------------
# One line per event on the console. The queue (django-q) logs two lines for every task it runs
# (thousands in a demo hour): only its warnings and errors are shown unless PORTAL_QUEUE_LOG_LEVEL
# says otherwise (INFO shows every task). Emails: one line each (portal.email_backend).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s", "datefmt": "%H:%M:%S"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django-q": {"level": os.environ.get("PORTAL_QUEUE_LOG_LEVEL", "WARNING")},
        # Django's own console handler on "django" would print each of its lines a second time.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
    },
}
# --- End of logging ----------------------------------------------------------------------------
