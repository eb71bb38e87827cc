"""Settings come from the environment: safe laptop defaults, and refusals for what production must set.

Each case imports `config.settings` in a fresh interpreter with a controlled environment,
so nothing from the test process (or the developer's shell) leaks in.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
PASSED_THROUGH = ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR")
# Production must also set the personal-data keys (see accounts/tests/test_personal_data_encrypted.py).
FIELD_KEYS = {
    "PORTAL_FIELD_KEYS": "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=",
    "PORTAL_BLIND_INDEX_KEY": "Z2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWZnaGlqa2w=",
}


def run_python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `code` with only `env` (plus PATH and friends) and a throwaway SQLite path."""
    clean = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    clean["SQLITE_PATH"] = str(tmp_path / "db.sqlite3")
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=clean, capture_output=True, text=True, timeout=120
    )


def settings_value(expression: str, tmp_path: Path, **env: str):
    code = f"import json, config.settings as s; print(json.dumps({expression}, default=str))"
    result = run_python(code, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_laptop_defaults_need_no_environment(tmp_path):
    assert settings_value("[s.DEBUG, s.ALLOWED_HOSTS, bool(s.SECRET_KEY)]", tmp_path) == [
        True,
        ["127.0.0.1", "localhost", "testserver"],
        True,
    ]


def test_debug_off_without_secret_key_is_refused(tmp_path):
    result = run_python("import config.settings", tmp_path, DEBUG="false", ALLOWED_HOSTS="portal.example.com")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY must be set" in result.stderr


def test_debug_off_without_allowed_hosts_is_refused(tmp_path):
    result = run_python("import config.settings", tmp_path, DEBUG="false", SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "ALLOWED_HOSTS must be set" in result.stderr


def test_production_settings_start_with_both_set(tmp_path):
    value = settings_value(
        "[s.DEBUG, s.ALLOWED_HOSTS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE]",
        tmp_path,
        DEBUG="false",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="portal.example.com, portal.internal",
        **FIELD_KEYS,
    )
    assert value == [False, ["portal.example.com", "portal.internal"], True, True]


def test_unreadable_boolean_is_refused(tmp_path):
    result = run_python("import config.settings", tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG must be true or false" in result.stderr


def test_default_broker_is_the_orm_with_timeout_below_retry(tmp_path):
    q = settings_value("s.Q_CLUSTER", tmp_path)
    assert q["orm"] == "default"
    assert "redis" not in q
    assert q["timeout"] < q["retry"]
    assert isinstance(q["max_attempts"], int) and 0 < q["max_attempts"] < 100
    assert q["sync"] is False


def test_a_queue_timeout_not_below_retry_is_refused(tmp_path):
    result = run_python("import config.settings", tmp_path, Q_TIMEOUT="120", Q_RETRY="90")
    assert result.returncode != 0
    assert "Q_TIMEOUT (120 s) must be below Q_RETRY (90 s)" in result.stderr


def test_redis_url_switches_the_broker_to_redis(tmp_path):
    q = settings_value("s.Q_CLUSTER", tmp_path, REDIS_URL="redis://cache.internal:6379/3")
    assert q["redis"] == "redis://cache.internal:6379/3"
    assert "orm" not in q
    assert q["timeout"] < q["retry"]


def test_database_url_is_honoured(tmp_path):
    db = settings_value(
        "s.DATABASES['default']", tmp_path, DATABASE_URL="postgres://portal:s3cret@db.internal:6543/portal_prod"
    )
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "portal_prod",
        "portal",
        "s3cret",
        "db.internal",
        6543,
    )


def test_default_database_is_the_sqlite_file(tmp_path):
    db = settings_value("s.DATABASES['default']", tmp_path)
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(tmp_path / "db.sqlite3")
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path):
    code = """
import json, django
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    pragmas = {}
    for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout"):
        cursor.execute(f"PRAGMA {name}")
        pragmas[name] = cursor.fetchone()[0]
print(json.dumps({"pragmas": pragmas, "transaction_mode": connection.transaction_mode}))
"""
    result = run_python(code, tmp_path, DJANGO_SETTINGS_MODULE="config.settings")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["pragmas"] == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 20000}
    assert found["transaction_mode"] == "IMMEDIATE"


@pytest.mark.parametrize("name", ["Q_TIMEOUT", "Q_WORKERS"])
def test_unreadable_number_is_refused(tmp_path, name):
    result = run_python("import config.settings", tmp_path, **{name: "lots"})
    assert result.returncode != 0
    assert f"{name} must be a whole number" in result.stderr


def test_sqlite_connections_persist_between_tasks(tmp_path):
    # django-q2 closes a non-persistent connection before every task and broker call.
    assert settings_value("s.DATABASES['default']['CONN_MAX_AGE']", tmp_path) == 60


def test_orm_broker_looks_for_work_often_and_takes_a_task_per_worker(tmp_path):
    q = settings_value("s.Q_CLUSTER", tmp_path, Q_WORKERS="3")
    assert (q["orm"], q["poll"], q["bulk"]) == ("default", 0.05, 3)
    q = settings_value("s.Q_CLUSTER", tmp_path, Q_POLL="0.2", Q_BULK="5")
    assert (q["poll"], q["bulk"]) == (0.2, 5)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"Q_POLL": "often"}, "Q_POLL must be a number, not 'often'"),
        ({"Q_POLL": "0"}, "Q_POLL must be a number of seconds above 0 and at most 10 (not 0.0)"),
        ({"Q_POLL": "nan"}, "Q_POLL must be a number of seconds above 0 and at most 10 (not nan)"),
        ({"Q_BULK": "0"}, "Q_BULK a whole number of 1 or more (not 0)"),
    ],
)
def test_unusable_poll_or_bulk_is_refused(tmp_path, env, message):
    result = run_python("import config.settings", tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_env_example_documents_every_variable_settings_reads():
    source = (BASE_DIR / "config" / "settings.py").read_text()
    read = set(
        re.findall(
            r"""(?:os\.environ(?:\.get)?[\[(]|env_bool\(|env_int\(|env_float\()\s*["']([A-Z][A-Z0-9_]*)["']""", source
        )
    )
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (BASE_DIR / ".env.example").read_text(), re.MULTILINE))
    assert read, "found no environment reads in settings.py; has the pattern changed?"
    assert read - documented == set(), "add these to .env.example"


def test_migrate_on_a_fresh_database_creates_the_staff_groups(tmp_path):
    """`manage.py migrate` alone leaves the three staff groups in place (post_migrate, after the last app
    with models), so a fresh install has them before anyone runs `seed_demo`."""
    code = (
        "import django, json; from django.core.management import call_command; django.setup(); "
        "call_command('migrate', verbosity=0); from django.contrib.auth.models import Group; "
        "print(json.dumps(sorted(Group.objects.values_list('name', flat=True))))"
    )
    result = run_python(code, tmp_path, DJANGO_SETTINGS_MODULE="config.settings")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["Auditor", "IT admin", "IT helpdesk"]


# --- HTTPS settings -------------------------------------------------------------------------------

HTTPS_SETTINGS = (
    "[s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER]"
)
PRODUCTION = {"DEBUG": "false", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "portal.example.com", **FIELD_KEYS}


def test_https_defaults_on_a_laptop_send_no_hsts_and_trust_no_proxy(tmp_path):
    assert settings_value(HTTPS_SETTINGS, tmp_path) == [0, False, False, None]


def test_https_defaults_in_production_send_hsts_for_a_year(tmp_path):
    assert settings_value(HTTPS_SETTINGS, tmp_path, **PRODUCTION) == [31536000, False, False, None]


def test_https_settings_come_from_the_environment(tmp_path):
    value = settings_value(
        HTTPS_SETTINGS,
        tmp_path,
        **PRODUCTION,
        PORTAL_HSTS_SECONDS="3600",
        PORTAL_HSTS_INCLUDE_SUBDOMAINS="true",
        PORTAL_SSL_REDIRECT="yes",
        PORTAL_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO=https",
    )
    assert value == [3600, True, True, ["HTTP_X_FORWARDED_PROTO", "https"]]


def test_hsts_can_be_turned_off_in_production(tmp_path):
    assert settings_value("s.SECURE_HSTS_SECONDS", tmp_path, **PRODUCTION, PORTAL_HSTS_SECONDS="0") == 0


@pytest.mark.parametrize(
    "value", ["HTTP_X_FORWARDED_PROTO", "X-Forwarded-Proto=https", "HTTP_X_FORWARDED_PROTO=", "=https"]
)
def test_a_malformed_proxy_ssl_header_is_refused(tmp_path, value):
    result = run_python("import config.settings", tmp_path, PORTAL_PROXY_SSL_HEADER=value)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "PORTAL_PROXY_SSL_HEADER must be HEADER=value" in result.stderr
    assert "e.g. HTTP_X_FORWARDED_PROTO=https" in result.stderr


def test_negative_hsts_seconds_are_refused(tmp_path):
    result = run_python("import config.settings", tmp_path, PORTAL_HSTS_SECONDS="-1")
    assert result.returncode != 0
    assert "PORTAL_HSTS_SECONDS must be 0 (off) or more" in result.stderr


# --- Audit checkpoint keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORTAL_AUDIT_SIGNING_KEY", "not-a-key"),
        ("PORTAL_AUDIT_SIGNING_KEY", "c2hvcnQ="),  # base64, but 5 bytes
        ("PORTAL_AUDIT_VERIFY_KEYS", "c2hvcnQ=,"),
    ],
)
def test_a_malformed_audit_key_stops_start_up_naming_the_variable_not_the_value(tmp_path, name, value):
    result = run_python("import config.settings", tmp_path, **{name: value})
    assert result.returncode != 0
    assert f"{name} must be an Ed25519" in result.stderr
    assert "audit_signing_key" in result.stderr
    assert value.rstrip(",") not in result.stderr.replace(name, "")


def test_a_well_formed_audit_key_is_taken(tmp_path):
    from portal.audit_keys import signing_key_new

    private, public = signing_key_new()
    value = settings_value(
        "[s.PORTAL_AUDIT_SIGNING_KEY, s.PORTAL_AUDIT_VERIFY_KEYS]",
        tmp_path,
        PORTAL_AUDIT_SIGNING_KEY=private,
        PORTAL_AUDIT_VERIFY_KEYS=public,
    )
    assert value == [private, public]


def test_deploy_check_warns_when_no_audit_signing_key_is_set(tmp_path):
    result = run_python(
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup();"
        "from django.core import checks; print([m.id for m in checks.run_checks(include_deployment_checks=True)])",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "portal.W001" in result.stdout
