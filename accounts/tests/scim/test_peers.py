"""Proof by peers nobody here wrote: python-scim's scim2-tester (every check) and `scim2 test` from
scim2-cli (exit 0), both against Portal's live `/scim/v2/` endpoint on loopback.

The connection has a username domain: scim2-tester invents userNames that are no email addresses
(uuids), which Portal reads as short names, `<uuid>@scim-test.example` (see README, "SCIM").
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from accounts.models import Employee
from accounts.scim.services import scim_connection_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def endpoint(live_server):
    connection, token = scim_connection_create(name="Peer", acting_user=None, username_domain="scim-test.example")
    return f"{live_server.url}/scim/v2", token


def test_scim2_tester_passes_every_check(endpoint):
    url, token = endpoint
    client = SyncSCIMClient(Client(base_url=url, headers={"Authorization": f"Bearer {token}"}))
    results = check_server(client)

    failed = [
        f"{r.status.name} {r.title} [{r.resource_type}]: {r.reason}" for r in results if r.status != Status.SUCCESS
    ]
    assert failed == [], "\n".join(failed)
    assert len(results) > 40
    assert Employee.objects.filter(work_email__endswith="@scim-test.example").exists()


def test_scim2_cli_test_exits_0(endpoint):
    url, token = endpoint
    scim2 = Path(sys.executable).with_name("scim2")
    env = {**os.environ, "SCIM_CLI_HEADERS": f"Authorization: Bearer {token}"}
    done = subprocess.run(
        [str(scim2), "--url", url, "test"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "SUCCESS" in done.stdout
