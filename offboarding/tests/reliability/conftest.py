"""Fixtures of the reliability tests: a database other processes can share, a real qcluster on it,
and the peers (slapd behind its counting front door, the webhook receiver, the scim2-server service provider)."""

import os

import pytest
from django.conf import settings as django_settings
from django.db import connection

from offboarding.tests.reliability.helpers import DEADLINES, PRELOAD
from portal.testing.worker import QCluster, enqueue_to, shareable_database_reason


def stack() -> str:
    broker = "redis" if django_settings.REDIS_URL else "orm"
    return f"{connection.vendor}+{broker}"


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)


@pytest.fixture
def file_db():
    """A database other processes and threads can share: a file or a server, not in-memory SQLite
    (whose shared cache answers "table is locked" instead of waiting). Skipped otherwise, except in CI."""
    reason = shareable_database_reason(connection.settings_dict)
    if reason:
        _skip_or_fail(reason)


@pytest.fixture
def make_cluster(file_db, settings, tmp_path, worker_settings_module):
    """Build real qclusters on this test database and broker (killed at the end of the test)."""
    settings.LIFECYCLE = DEADLINES.lifecycle(settings.LIFECYCLE)
    made = []

    def make(name: str | None = None, *, label: str = "qcluster", deadlines=DEADLINES, **kwargs) -> QCluster:
        worker = QCluster(
            name=name or f"portal_rel_{os.getpid()}",
            database=connection.settings_dict,
            settings_module=worker_settings_module,
            redis_url=settings.REDIS_URL,
            workers=kwargs.pop("workers", 2),
            deadlines=deadlines,
            preload=[PRELOAD],
            log_path=tmp_path / f"{label}.log",
            **kwargs,
        )
        made.append((label, worker))
        return worker

    yield make
    for label, worker in made:
        worker.kill()
        print(f"--- {label} log ({stack()}) ---\n{worker.log_tail(40)}")


@pytest.fixture
def cluster(make_cluster):
    """A real qcluster on this test database and broker; this process enqueues to it."""
    worker = make_cluster()
    with worker, enqueue_to(worker):
        yield worker


@pytest.fixture
def hook(webhook_server):
    return webhook_server


@pytest.fixture
def ldap(ldap_directory):
    return ldap_directory


@pytest.fixture
def scim():
    """scim2-server's service provider on 127.0.0.1 behind the counting front door (`portal.testing.scim_server`)."""
    from accounts.connectors.scim import forget_discovery
    from portal.testing.scim_server import ScimServer

    forget_discovery()
    with ScimServer() as server:
        yield server
    forget_discovery()
