"""The webhook connector against a real HTTP server on 127.0.0.1 (the `webhook_server` fixture).

The receiver checks the signature itself and dedupes by idempotency key, as a real one must.
"""

import hashlib
import hmac
import json
import threading

import pytest
from django.core.exceptions import ValidationError

from accounts.connectors import AccountState, ConnectorError, webhook
from accounts.connectors.webhook import WebhookConnector, sign
from accounts.tests.factories import ApplicationFactory, EmployeeFactory
from portal.testing.ldap_server import free_port


def make_connector(config: dict) -> WebhookConnector:
    application = ApplicationFactory.build(pk=42, name="Ops Console", connector="webhook", connector_config=config)
    return WebhookConnector(application)


@pytest.fixture
def connector(webhook_server):
    return make_connector(webhook_server.connector_config())


@pytest.fixture
def ada():
    return EmployeeFactory.build(
        pk=7, employee_number="E100001", first_name="Ada", last_name="Lovelace", work_email="ada@example.com"
    )


def test_provision_posts_signed_json_and_reads_the_answer(webhook_server, connector, ada):
    state = connector.provision(employee=ada, level="operator", idempotency_key="task-1")

    assert state == AccountState(exists=True, active=True, level="operator", external_id="ext-E100001")
    [call] = webhook_server.calls
    assert call.signature_ok
    assert call.headers["content-type"] == "application/json"
    assert call.headers["x-portal-event"] == "provision"
    assert call.idempotency_key == "task-1:provision:42:7"
    assert call.json == {
        "event": "provision",
        "idempotency_key": "task-1:provision:42:7",
        "application": "Ops Console",
        "employee": {
            "employee_number": "E100001",
            "work_email": "ada@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
        },
        "level": "operator",
        "external_id": "",
    }
    assert webhook_server.accounts["E100001"]["level"] == "operator"


def test_the_signature_covers_timestamp_and_body(webhook_server, connector, ada):
    connector.provision(employee=ada, level="operator", idempotency_key="task-1")
    [call] = webhook_server.calls
    timestamp = call.headers["x-portal-timestamp"]
    expected = hmac.new(webhook_server.secret.encode(), f"{timestamp}.".encode() + call.body, hashlib.sha256)

    assert call.headers["x-portal-signature"] == f"sha256={expected.hexdigest()}"
    assert sign(webhook_server.secret, timestamp, call.body) == call.headers["x-portal-signature"]
    # A replay with a fresher timestamp, or a changed body, does not verify.
    later = str(int(timestamp) + 60)
    assert not webhook_server.verify({**call.headers, "x-portal-timestamp": later}, call.body)
    assert not webhook_server.verify(call.headers, call.body.replace(b"operator", b"admin"))
    assert not webhook_server.verify({**call.headers, "x-portal-timestamp": str(int(timestamp) - 3600)}, call.body)


def test_a_wrong_secret_is_refused_by_the_receiver(webhook_server, ada):
    connector = make_connector(webhook_server.connector_config(secret="not-the-shared-secret"))

    with pytest.raises(ConnectorError, match=r"answered HTTP 401: bad signature") as exc:
        connector.provision(employee=ada, level="operator", idempotency_key="task-1")

    assert exc.value.retryable is False
    assert webhook_server.effects == []


def test_same_idempotency_key_twice_has_one_effect(webhook_server, connector, ada):
    first = connector.provision(employee=ada, level="operator", idempotency_key="task-1")
    second = connector.provision(employee=ada, level="operator", idempotency_key="task-1")

    assert first == second
    assert len(webhook_server.calls) == 2
    assert webhook_server.calls[0].body == webhook_server.calls[1].body  # same key, same bytes
    assert len(webhook_server.effects) == 1


def test_each_event_of_one_task_has_its_own_key(webhook_server, connector, ada):
    connector.disable(employee=ada, external_id="ext-E100001", idempotency_key="task-9")
    connector.revoke(employee=ada, external_id="ext-E100001", idempotency_key="task-9")

    assert [call.idempotency_key for call in webhook_server.calls] == ["task-9:disable:42:7", "task-9:revoke:42:7"]
    assert len(webhook_server.effects) == 2
    assert webhook_server.accounts["E100001"] == {
        "active": False,
        "level": None,
        "external_id": "ext-E100001",
        "disabled": True,
    }
    assert webhook_server.app_accounts[("Ops Console", "E100001")] == webhook_server.accounts["E100001"]


def test_change_level_revoke_and_disable_answers(webhook_server, connector, ada):
    connector.provision(employee=ada, level="viewer", idempotency_key="task-1")
    assert connector.change_level(
        employee=ada, external_id="ext-E100001", level="admin", idempotency_key="task-2"
    ) == AccountState(exists=True, active=True, level="admin", external_id="ext-E100001")
    assert connector.disable(employee=ada, external_id="ext-E100001", idempotency_key="task-3") == AccountState(
        exists=True, active=False, external_id="ext-E100001"
    )
    assert connector.revoke(employee=ada, external_id="ext-E100001", idempotency_key="task-4") == AccountState(
        exists=False, external_id="ext-E100001"
    )
    assert [effect["event"] for effect in webhook_server.effects] == ["provision", "change_level", "disable", "revoke"]
    assert webhook_server.calls[1].json["external_id"] == "ext-E100001"


def test_fails_twice_then_succeeds_with_one_effect(webhook_server, connector, ada):
    webhook_server.fail_next(2, status=503, body='{"error": "database is restarting"}')

    for _ in range(2):
        with pytest.raises(ConnectorError, match="answered HTTP 503: database is restarting") as exc:
            connector.provision(employee=ada, level="operator", idempotency_key="task-1")
        assert exc.value.retryable is True
    state = connector.provision(employee=ada, level="operator", idempotency_key="task-1")

    assert state.active
    assert len(webhook_server.calls) == 3
    assert len({call.idempotency_key for call in webhook_server.calls}) == 1
    assert len(webhook_server.effects) == 1


def test_a_server_error_names_the_status_and_the_peers_message(webhook_server, connector, ada):
    webhook_server.fail_always(500, "Traceback: KeyError 'level'")

    with pytest.raises(ConnectorError) as exc:
        connector.provision(employee=ada, level="operator", idempotency_key="task-1")

    assert str(exc.value) == f"Webhook {webhook_server.url} answered HTTP 500: Traceback: KeyError 'level'"
    assert webhook_server.effects == []


def test_a_client_error_is_not_retryable(webhook_server, connector, ada):
    webhook_server.fail_next(1, status=422, body='{"message": "unknown level operator"}')
    with pytest.raises(ConnectorError, match="answered HTTP 422: unknown level operator") as exc:
        connector.provision(employee=ada, level="operator", idempotency_key="task-1")
    assert exc.value.retryable is False


def test_an_answer_that_is_not_json_is_an_error(webhook_server, connector, ada):
    webhook_server.bad_json_next(1, body="<html>Welcome to nginx</html>")
    with pytest.raises(ConnectorError, match="answered HTTP 200 with a body that is not JSON: <html>Welcome to nginx"):
        connector.provision(employee=ada, level="operator", idempotency_key="task-1")


def test_an_answer_without_status_ok_is_an_error(webhook_server, connector, ada):
    webhook_server.fail_next(1, status=200, body=json.dumps({"status": "queued", "message": "try later"}))
    with pytest.raises(ConnectorError, match='answered HTTP 200 without "status": "ok": try later'):
        connector.provision(employee=ada, level="operator", idempotency_key="task-1")


def test_an_unreachable_receiver_fails_with_the_reason(ada):
    url = f"http://127.0.0.1:{free_port()}/hooks/portal"
    connector = make_connector({"url": url, "secret": "a-long-enough-secret"})
    with pytest.raises(ConnectorError, match=f"Webhook {url} is unreachable: .*Connection refused") as exc:
        connector.provision(employee=ada, level="operator", idempotency_key="task-1")
    assert exc.value.retryable is True


def test_a_slow_receiver_times_out(webhook_server, ada):
    webhook_server.delay = 1.5
    connector = make_connector(webhook_server.connector_config(timeout=0.3))
    with pytest.raises(ConnectorError, match=f"Webhook {webhook_server.url} did not answer within 0.3 s"):
        connector.provision(employee=ada, level="operator", idempotency_key="task-1")


def test_check_connection_pings_without_an_effect(webhook_server, connector):
    connector.check_connection()

    [call] = webhook_server.calls
    assert call.event == "ping" and call.signature_ok
    assert webhook_server.effects == []


def test_check_connection_reports_a_wrong_secret(webhook_server):
    with pytest.raises(ConnectorError, match="HTTP 401"):
        make_connector(webhook_server.connector_config(secret="not-the-shared-secret")).check_connection()


def test_the_secret_may_come_from_the_environment(monkeypatch, webhook_server, ada):
    monkeypatch.setenv("PORTAL_TEST_WEBHOOK_SECRET", webhook_server.secret)
    config = {"url": webhook_server.url, "secret_env": "PORTAL_TEST_WEBHOOK_SECRET"}
    WebhookConnector.validate_config(config)
    make_connector(config).provision(employee=ada, level="operator", idempotency_key="task-1")
    assert webhook_server.calls[0].signature_ok


def test_read_state_asks_nothing(webhook_server, connector, ada):
    assert WebhookConnector.supports_read_state is False
    assert connector.read_state(employee=ada, external_id="ext-1") == AccountState(exists=True, external_id="ext-1")
    assert connector.read_state(employee=ada, external_id="") == AccountState(exists=False)
    assert webhook_server.calls == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "“url” is missing"),
        ({}, "“secret” is missing"),
        ({"url": "ftp://x", "secret": "s" * 16}, "“url” must be an http:// or https:// URL"),
        ({"url": "http://x", "secret": "short"}, "“secret” must be at least 16 characters"),
        ({"url": "http://x", "secret_env": "PORTAL_TEST_UNSET_VARIABLE"}, "names PORTAL_TEST_UNSET_VARIABLE"),
        ({"url": "http://x", "secret": "s" * 16, "timeout": 0}, "“timeout” must be a number of seconds"),
        ({"url": "http://x", "secret": "s" * 16, "secret_env": "X"}, "both set"),
        ({"url": "http://x", "secret": "s" * 16, "hmac_key": "x"}, "“hmac_key” not a webhook setting"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_validate_config_names_the_bad_setting(config, expected):
    with pytest.raises(ValidationError) as exc:
        WebhookConnector.validate_config(config)
    assert expected in " | ".join(exc.value.messages)


def test_an_invalid_saved_config_fails_without_a_call(webhook_server, ada):
    connector = make_connector({"url": webhook_server.url, "secret_env": "PORTAL_TEST_UNSET_VARIABLE"})
    with pytest.raises(ConnectorError, match="the webhook connector config is not valid: .*PORTAL_TEST_UNSET_VARIABLE"):
        connector.provision(employee=ada, level="operator", idempotency_key="task-1")
    assert webhook_server.calls == []


def test_forget_is_a_signed_event_naming_only_the_employee_number_and_applied_once(webhook_server, connector, ada):
    connector.provision(employee=ada, level="operator", idempotency_key="task-1")
    purged = EmployeeFactory.build(
        pk=7, employee_number="E100001", first_name="Former employee", last_name="E100001", work_email="x@y.invalid"
    )

    first = connector.forget(employee=purged, external_id="ext-E100001", idempotency_key="task-9")
    again = connector.forget(employee=purged, external_id="ext-E100001", idempotency_key="task-9")

    assert first == again == AccountState(exists=False)
    calls = webhook_server.calls_for("forget")
    assert len(calls) == 2 and all(call.signature_ok for call in calls)
    assert [call.applied for call in calls] == [True, False]  # the second delivery is absorbed by its key
    assert calls[0].idempotency_key == "task-9:forget:42:7"
    assert calls[0].json == {
        "event": "forget",
        "idempotency_key": "task-9:forget:42:7",
        "application": "Ops Console",
        "employee": {"employee_number": "E100001"},
        "external_id": "ext-E100001",
    }
    assert "E100001" not in webhook_server.accounts
    assert [effect["event"] for effect in webhook_server.effects] == ["provision", "forget"]


def test_forget_refused_by_the_receiver_fails_with_its_words(webhook_server, connector, ada):
    webhook_server.fail_next(1, status=503, body='{"error": "erasure queue full"}')
    with pytest.raises(ConnectorError, match="answered HTTP 503: erasure queue full") as exc:
        connector.forget(employee=ada, external_id="", idempotency_key="task-9")
    assert exc.value.retryable
    with pytest.raises(ConnectorError, match="needs an idempotency key"):
        connector.forget(employee=ada, external_id="", idempotency_key="")


# --- Keep-alive -------------------------------------------------------------------------------------


def test_calls_from_one_thread_share_one_kept_alive_connection(webhook_server, connector, ada):
    sessions = []

    def three_revocations():  # in a thread of its own, so its session starts with no connection
        for key in ("t1", "t2", "t3"):
            connector.revoke(employee=ada, external_id="", idempotency_key=key)
        sessions.append(webhook.http_session())

    thread = threading.Thread(target=three_revocations)
    thread.start()
    thread.join()

    assert len(webhook_server.calls) == 3
    pools = sessions[0].get_adapter(webhook_server.url).poolmanager.pools
    opened = [pools[key].num_connections for key in pools.keys()]  # noqa: SIM118 - urllib3 cannot iterate it
    assert opened == [1]  # three calls, one pool, one TCP connection


def test_each_thread_and_each_process_gets_its_own_session(monkeypatch):
    mine = webhook.http_session()
    assert webhook.http_session() is mine
    others = []
    thread = threading.Thread(target=lambda: others.append(webhook.http_session()))
    thread.start()
    thread.join()
    assert others[0] is not mine
    monkeypatch.setattr(webhook.os, "getpid", lambda: -1)  # as in a forked worker
    assert webhook.http_session() is not mine
