"""The SCIM connector against scim2-server's own service provider on 127.0.0.1 (`portal.testing.scim_server`).

The peer is python-scim's server, not ours: it validates what Portal sends, enforces uniqueness
(409), answers PATCH with 501 when its ServiceProviderConfig says so, and keeps the state the
tests read back. The front door counts every call and every applied write.
"""

import threading
import time

import pytest
from django.core.exceptions import ValidationError

from accounts.connectors import AccountState, ConnectorError, connector_for, mask_secrets, restore_secrets
from accounts.connectors import scim as scim_module
from accounts.connectors.scim import ScimConnector, retry_after_seconds
from accounts.tests.factories import ApplicationFactory, EmployeeFactory
from portal.testing.ldap_server import free_port
from portal.testing.scim_server import ScimServer

TENANT = "grafana"


@pytest.fixture
def scim():
    scim_module.forget_discovery()
    with ScimServer() as server:
        server.add_group("Grafana Admins", tenant=TENANT)
        server.add_group("Grafana Editors", tenant=TENANT)
        yield server
    scim_module.forget_discovery()


GROUPS = {"admin": "Grafana Admins", "editor": "Grafana Editors"}


def make_connector(config: dict, levels=("viewer", "editor", "admin")) -> ScimConnector:
    application = ApplicationFactory.build(
        pk=42, name="Grafana", connector="scim", connector_config=config, access_levels=list(levels)
    )
    return ScimConnector(application)


@pytest.fixture
def connector(scim):
    return make_connector(scim.connector_config(TENANT, groups=GROUPS))


@pytest.fixture
def ada():
    return EmployeeFactory.build(
        pk=7, employee_number="E100001", first_name="Ada", last_name="Lovelace", work_email="ada@example.com",
        title="Analyst",
    )  # fmt: skip


def writes(scim, since=0):
    return [(c.method, c.resource) for c in scim.calls[since:] if c.is_write]


# --- provisioning --------------------------------------------------------------------------------------


def test_provision_creates_the_user_with_portals_attributes(scim, connector, ada):
    state = connector.provision(employee=ada, level="viewer", idempotency_key="task-1")

    user = scim.user("ada@example.com", tenant=TENANT)
    assert state == AccountState(exists=True, active=True, level="viewer", external_id=user["id"])
    assert user["externalId"] == "E100001"
    assert user["name"] == {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"}
    assert user["displayName"] == "Ada Lovelace" and user["title"] == "Analyst" and user["active"] is True
    assert user["emails"] == [{"value": "ada@example.com", "type": "work", "primary": True}]
    assert writes(scim) == [("POST", "Users")]  # viewer has no group: an active account only
    first = scim.calls[0]
    assert (first.method, first.path) == ("GET", "/ServiceProviderConfig"), "the target's config is read first"
    assert all(c.headers.get("authorization") == f"Bearer {scim.token}" for c in scim.calls)
    post = next(c for c in scim.calls if c.method == "POST")
    assert post.headers["content-type"] == "application/scim+json"


def test_provision_at_a_level_with_a_group_adds_the_member(scim, connector, ada):
    state = connector.provision(employee=ada, level="admin", idempotency_key="task-1")

    assert state.level == "admin" and state.active
    assert scim.members("Grafana Admins", tenant=TENANT) == {state.external_id}
    assert scim.members("Grafana Editors", tenant=TENANT) == set()
    assert writes(scim) == [("POST", "Users"), ("PATCH", "Groups")]


def test_provisioning_again_finds_the_user_and_writes_nothing(scim, connector, ada):
    first = connector.provision(employee=ada, level="admin", idempotency_key="task-1")
    before = len(scim.calls)

    again = connector.provision(employee=ada, level="admin", idempotency_key="task-1")  # a re-delivered task
    also = connector.provision(employee=ada, level="admin", idempotency_key="task-9")  # or another one

    assert again == also == first
    assert writes(scim, before) == [], "a second delivery found its own effect and sent nothing"
    assert len(scim.effects(tenant=TENANT)) == 2


def test_change_level_moves_the_member_between_groups(scim, connector, ada):
    state = connector.provision(employee=ada, level="editor", idempotency_key="task-1")
    before = len(scim.calls)

    state = connector.change_level(employee=ada, external_id=state.external_id, level="admin", idempotency_key="t2")

    assert state.level == "admin"
    assert scim.members("Grafana Admins", tenant=TENANT) == {state.external_id}
    assert scim.members("Grafana Editors", tenant=TENANT) == set()
    assert writes(scim, before) == [("PATCH", "Groups"), ("PATCH", "Groups")]
    before = len(scim.calls)
    state = connector.change_level(employee=ada, external_id=state.external_id, level="viewer", idempotency_key="t3")
    assert state.level == "viewer" and state.active
    assert scim.members("Grafana Admins", tenant=TENANT) == set()
    assert writes(scim, before) == [("PATCH", "Groups")]


def test_changed_attributes_are_patched_and_only_those(scim, connector, ada):
    state = connector.provision(employee=ada, level="viewer", idempotency_key="task-1")
    ada.last_name, ada.title = "King", "Countess"
    before = len(scim.calls)

    connector.change_level(employee=ada, external_id=state.external_id, level="viewer", idempotency_key="t2")

    [patch] = [c for c in scim.calls[before:] if c.is_write]
    assert patch.method == "PATCH" and patch.path == f"/Users/{state.external_id}"
    assert sorted(op["path"] for op in patch.json["Operations"]) == ["displayName", "name", "title"]
    user = scim.user("ada@example.com", tenant=TENANT)
    assert user["name"]["familyName"] == "King" and user["title"] == "Countess"


def test_a_renamed_person_is_found_by_the_id_portal_kept(scim, connector, ada):
    state = connector.provision(employee=ada, level="viewer", idempotency_key="task-1")
    ada.work_email = "ada.king@example.com"

    again = connector.change_level(employee=ada, external_id=state.external_id, level="viewer", idempotency_key="t2")

    assert again.external_id == state.external_id
    assert list(scim.users(tenant=TENANT)) == ["ada.king@example.com"]


def test_two_deliveries_creating_at_once_make_one_user(scim, ada):
    """Both search, both find nothing, both POST: the target's 409 sends the second to the first one's user."""
    config = scim.connector_config(TENANT, groups=GROUPS)
    scim.hold("POST", path="/Users")
    results, errors = [], []

    def provision():
        try:
            results.append(make_connector(config).provision(employee=ada, level="admin", idempotency_key="t"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    first = threading.Thread(target=provision)
    first.start()
    scim.wait_held(timeout=10)  # the first POST is applied, its answer withheld
    provision()  # the second delivery, meanwhile: finds the user (created) and converges
    scim.release()
    first.join(10)

    assert errors == []
    assert len(scim.users(tenant=TENANT)) == 1
    assert {r.external_id for r in results} == {scim.user("ada@example.com", tenant=TENANT)["id"]}
    assert len(scim.effects(tenant=TENANT, method="POST")) == 1
    group_adds = scim.effects(tenant=TENANT, resource="Groups")
    assert len(group_adds) == 1, f"one membership added, whoever got there first: {group_adds}"


def test_a_user_holding_the_user_name_for_someone_else_is_not_taken_over(scim, connector, ada):
    other = EmployeeFactory.build(
        pk=8, employee_number="E999", first_name="Eve", last_name="X", work_email=ada.work_email
    )
    connector.provision(employee=other, level="viewer", idempotency_key="t0")

    with pytest.raises(ConnectorError, match=r"belongs to someone else \(externalId E999, not E100001\)") as exc:
        connector.provision(employee=ada, level="viewer", idempotency_key="t1")
    assert exc.value.retryable is False
    assert len(scim.effects(tenant=TENANT)) == 1


# --- revoking, disabling, deleting ----------------------------------------------------------------------


def test_revoke_removes_the_memberships_then_deactivates(scim, connector, ada):
    state = connector.provision(employee=ada, level="admin", idempotency_key="task-1")
    before = len(scim.calls)

    revoked = connector.revoke(employee=ada, external_id=state.external_id, idempotency_key="task-2")

    assert revoked == AccountState(exists=True, active=False, external_id=state.external_id)
    assert scim.members("Grafana Admins", tenant=TENANT) == set()
    assert scim.user("ada@example.com", tenant=TENANT)["active"] is False
    assert writes(scim, before) == [("PATCH", "Groups"), ("PATCH", "Users")]
    [deactivate] = [c for c in scim.calls[before:] if c.resource == "Users" and c.is_write]
    assert deactivate.json["Operations"] == [{"op": "replace", "path": "active", "value": False}]

    before = len(scim.calls)
    assert connector.revoke(employee=ada, external_id=state.external_id, idempotency_key="task-2") == revoked
    assert writes(scim, before) == [], "revoking again finds it done"


def test_revoke_of_an_account_the_target_does_not_have_is_done(scim, connector, ada):
    assert connector.revoke(employee=ada, external_id="", idempotency_key="t") == AccountState(exists=False)
    assert writes(scim) == []


def test_revoke_deletes_when_configured(scim, ada):
    connector = make_connector(scim.connector_config(TENANT, groups=GROUPS, on_revoke="delete"))
    state = connector.provision(employee=ada, level="editor", idempotency_key="t1")

    assert connector.revoke(employee=ada, external_id=state.external_id, idempotency_key="t2") == AccountState(
        exists=False, external_id=state.external_id
    )
    assert scim.users(tenant=TENANT) == {}
    assert scim.members("Grafana Editors", tenant=TENANT) == set()
    before = len(scim.calls)
    assert connector.revoke(employee=ada, external_id=state.external_id, idempotency_key="t2").exists is False
    assert writes(scim, before) == []


def test_disable_keeps_the_memberships_and_provisioning_reactivates(scim, connector, ada):
    state = connector.provision(employee=ada, level="admin", idempotency_key="t1")

    disabled = connector.disable(employee=ada, external_id=state.external_id, idempotency_key="t2")
    assert disabled.active is False and scim.user("ada@example.com", tenant=TENANT)["active"] is False
    assert scim.members("Grafana Admins", tenant=TENANT) == {state.external_id}
    assert connector.read_state(employee=ada, external_id=state.external_id) == AccountState(
        exists=True, active=False, level="admin", external_id=state.external_id
    )

    again = connector.provision(employee=ada, level="admin", idempotency_key="t3")
    assert again.active and scim.user("ada@example.com", tenant=TENANT)["active"] is True


def test_forget_deletes_the_user_found_by_external_id(scim, connector, ada):
    state = connector.provision(employee=ada, level="admin", idempotency_key="t1")
    ada.work_email, ada.first_name = "former-e100001@invalid", "Former"  # as the retention purge leaves it

    assert connector.forget(employee=ada, external_id="", idempotency_key="t2") == AccountState(exists=False)
    assert scim.users(tenant=TENANT) == {} and scim.members("Grafana Admins", tenant=TENANT) == set()
    assert state.external_id not in str(scim.resources("Group", tenant=TENANT))


def test_read_state_says_what_the_target_holds(scim, connector, ada):
    assert connector.read_state(employee=ada, external_id="") == AccountState(exists=False)
    state = connector.provision(employee=ada, level="editor", idempotency_key="t1")
    assert connector.read_state(employee=ada, external_id=state.external_id) == state


# --- the target's ServiceProviderConfig -----------------------------------------------------------------


def test_a_target_without_patch_is_written_with_put(ada):
    scim_module.forget_discovery()
    with ScimServer(patch=False) as server:
        server.add_group("Grafana Admins", tenant=TENANT)
        connector = make_connector(server.connector_config(TENANT, groups={"admin": "Grafana Admins"}))

        state = connector.provision(employee=ada, level="admin", idempotency_key="t1")
        ada.title = "Countess"
        connector.change_level(employee=ada, external_id=state.external_id, level="viewer", idempotency_key="t2")
        connector.revoke(employee=ada, external_id=state.external_id, idempotency_key="t3")

        assert [c.method for c in server.calls if c.method == "PATCH"] == [], "no PATCH to a target without it"
        assert writes(server) == [("POST", "Users"), ("PUT", "Groups"), ("PUT", "Users"), ("PUT", "Groups"),
                                  ("PUT", "Users")]  # fmt: skip
        puts = [c for c in server.calls if c.method == "PUT"]
        assert all(c.headers.get("if-match") for c in puts), "PUT carries the version it read (ETag)"
        user = server.user("ada@example.com", tenant=TENANT)
        assert (user["active"], user["title"]) == (False, "Countess")
        assert server.members("Grafana Admins", tenant=TENANT) == set()
    scim_module.forget_discovery()


def test_a_target_without_filtering_needs_group_ids(ada):
    scim_module.forget_discovery()
    with ScimServer(filter=False) as server:
        group_id = server.add_group("Grafana Admins", tenant=TENANT)
        by_name = make_connector(server.connector_config(TENANT, groups={"admin": "Grafana Admins"}))
        with pytest.raises(ConnectorError, match=r"does not support filtering .* give it as “id:<the group's id>”"):
            by_name.check_connection()

        by_id = make_connector(server.connector_config(TENANT, groups={"admin": f"id:{group_id}"}))
        state = by_id.provision(employee=ada, level="admin", idempotency_key="t1")
        assert server.members("Grafana Admins", tenant=TENANT) == {state.external_id}
        assert not [c for c in server.calls if "filter" in c.query], "no filter sent to a target without it"
        assert by_id.revoke(employee=ada, external_id=state.external_id, idempotency_key="t2").active is False
    scim_module.forget_discovery()


def test_the_service_provider_config_is_read_once_per_interval(scim, connector, ada):
    connector.provision(employee=ada, level="viewer", idempotency_key="t1")
    connector.read_state(employee=ada, external_id="")
    assert len([c for c in scim.calls if c.resource == "ServiceProviderConfig"]) == 1
    scim_module.forget_discovery()
    connector.read_state(employee=ada, external_id="")
    assert len([c for c in scim.calls if c.resource == "ServiceProviderConfig"]) == 2


# --- retries ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_an_answer_to_wait_is_honoured_then_sent_again(scim, connector, ada, status):
    connector.read_state(employee=ada, external_id="")  # the config is read and kept
    before = len(scim.calls)
    scim.fail_next(1, status=status, retry_after=1)

    started = time.monotonic()
    state = connector.provision(employee=ada, level="admin", idempotency_key="t1")
    waited = time.monotonic() - started

    assert state.active and state.level == "admin"
    refused, resent = scim.calls[before], scim.calls[before + 1]
    assert refused.status == status and refused.failed_on_request
    assert (resent.method, resent.path) == (refused.method, refused.path), "the same request again"
    assert resent.received_at - refused.received_at >= 0.95, "after the Retry-After the target asked for"
    assert waited >= 1
    assert len(scim.effects(tenant=TENANT, method="POST")) == 1


def test_a_wait_longer_than_allowed_fails_retryable_without_sleeping(scim, ada):
    connector = make_connector(scim.connector_config(TENANT, groups=GROUPS, max_retry_wait=2))
    connector.read_state(employee=ada, external_id="")
    scim.fail_next(1, status=429, retry_after=3600)

    started = time.monotonic()
    with pytest.raises(ConnectorError, match=r"answered HTTP 429 and asks to wait 3600 s") as exc:
        connector.provision(employee=ada, level="viewer", idempotency_key="t1")
    assert exc.value.retryable is True and time.monotonic() - started < 2
    assert scim.effects(tenant=TENANT) == []


def test_retries_are_bounded_and_the_last_answer_is_reported(scim, ada):
    connector = make_connector(scim.connector_config(TENANT, groups=GROUPS, max_retries=2))
    scim.fail_always(503, detail="maintenance until noon")

    with pytest.raises(ConnectorError, match=r"answered HTTP 503 .*maintenance until noon") as exc:
        connector.provision(employee=ada, level="viewer", idempotency_key="t1")
    assert exc.value.retryable is True
    assert len(scim.calls) == 3, "one request and two re-sends, no more"


def test_a_client_error_is_not_retried(scim, connector, ada):
    scim.fail_next(1, status=400, detail="userName is malformed")
    with pytest.raises(ConnectorError, match=r"HTTP 400 .*userName is malformed") as exc:
        connector.provision(employee=ada, level="viewer", idempotency_key="t1")
    assert exc.value.retryable is False and len(scim.calls) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2", 2.0), (" 0 ", 0.0), (None, None), ("", None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_reads_seconds_and_dates(value, expected):
    assert retry_after_seconds(value) == expected


def test_retry_after_as_a_future_date():
    from email.utils import formatdate

    assert 8 <= retry_after_seconds(formatdate(time.time() + 10, usegmt=True)) <= 10


# --- errors in plain words -------------------------------------------------------------------------------


def test_a_wrong_token_is_refused_in_plain_words(scim, ada):
    connector = make_connector(scim.connector_config(TENANT, token="not-the-token"))
    with pytest.raises(ConnectorError, match=r"refused Portal's bearer token \(HTTP 401\): check “token”") as exc:
        connector.provision(employee=ada, level="viewer", idempotency_key="t1")
    assert exc.value.retryable is False
    assert scim.effects() == []


def test_an_unreachable_service_fails_with_the_reason(ada):
    connector = make_connector({"url": f"http://127.0.0.1:{free_port()}/scim/v2", "token": "t"})
    with pytest.raises(ConnectorError, match=r"is unreachable: .*(refused|Errno)") as exc:
        connector.provision(employee=ada, level="viewer", idempotency_key="t1")
    assert exc.value.retryable is True


def test_a_missing_group_is_named(scim, ada):
    connector = make_connector(scim.connector_config(TENANT, groups={"admin": "Nope", "editor": "id:does-not-exist"}))
    with pytest.raises(ConnectorError, match=r"These groups do not exist .*Nope \(for admin\); id:does-not-exist"):
        connector.check_connection()
    assert scim.effects() == []


def test_check_connection_reads_and_writes_nothing(scim, connector):
    connector.check_connection()
    assert scim.effects() == [] and scim.counts()["reads"] >= 3


def test_a_page_that_is_not_scim_is_an_error(ada):
    from portal.testing.webhook_server import WebhookServer

    with WebhookServer() as hook:  # answers 404 JSON that is not a SCIM error to anything but its hook
        connector = make_connector({"url": hook.url.replace("/hooks/portal", "/scim/v2"), "token": "t"})
        with pytest.raises(ConnectorError, match=r"answered something that is not SCIM"):
            connector.provision(employee=ada, level="viewer", idempotency_key="t1")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "“url” is missing"),
        ({"url": "ftp://x", "token": "t"}, "“url” must be an http:// or https:// URL"),
        ({"url": "https://x/scim/v2?a=1", "token": "t"}, "without ?query"),
        ({"url": "https://x/scim/v2"}, "“token” is missing: the bearer token"),
        ({"url": "https://x", "token": "t", "token_env": "X"}, "“token” and “token_env” are both set"),
        ({"url": "https://x", "token_env": "PORTAL_TEST_UNSET_VAR"}, "names PORTAL_TEST_UNSET_VAR, which is not set"),
        ({"url": "https://x", "token": "t", "groups": ["a"]}, "“groups” must map access levels"),
        ({"url": "https://x", "token": "t", "groups": {"admin": ""}}, "“groups.admin” must be a group"),
        ({"url": "https://x", "token": "t", "groups": {"owner": "O"}}, "names level(s) the application does not have"),
        ({"url": "https://x", "token": "t", "groups": {"admin": "A"}}, "no group for the levels viewer, editor"),
        ({"url": "https://x", "token": "t", "on_revoke": "burn"}, "“on_revoke” must be one of deactivate, delete"),
        ({"url": "https://x", "token": "t", "user_name_from": "x"}, "“user_name_from” must be one of email"),
        ({"url": "https://x", "token": "t", "max_retries": 99}, "“max_retries” must be a whole number from 0 to 10"),
        ({"url": "https://x", "token": "t", "max_retry_wait": "a"}, "“max_retry_wait” must be a number of seconds"),
        ({"url": "https://x", "token": "t", "timeout": 0}, "“timeout” must be a number of seconds"),
        ({"url": "https://x", "token": "t", "colour": "red"}, "“colour” not a SCIM setting"),
    ],
)
def test_validate_config_names_the_bad_setting(config, expected):
    with pytest.raises(ValidationError) as exc:
        ScimConnector.validate_config(config, access_levels=["viewer", "editor", "admin"])
    assert any(expected in message for message in exc.value.messages), exc.value.messages


def test_an_invalid_saved_config_fails_without_a_call(scim, ada):
    connector = make_connector({**scim.connector_config(TENANT), "on_revoke": "burn"})
    with pytest.raises(ConnectorError, match=r"the scim connector config is not valid: “on_revoke”") as exc:
        connector.provision(employee=ada, level="viewer", idempotency_key="t1")
    assert exc.value.retryable is False and scim.calls == []


def test_the_token_is_a_masked_secret_and_may_come_from_the_environment(monkeypatch, scim, ada):
    config = scim.connector_config(TENANT)
    masked = mask_secrets("scim", config)
    assert masked["token"] == "********" and scim.token not in str(masked)
    assert restore_secrets("scim", masked, config) == (config, [])

    monkeypatch.setenv("PORTAL_TEST_SCIM_TOKEN", scim.token)
    connector = make_connector({"url": scim.url(TENANT), "token_env": "PORTAL_TEST_SCIM_TOKEN"}, levels=["user"])
    assert connector.provision(employee=ada, level="user", idempotency_key="t1") == AccountState(
        exists=True, active=True, level="user", external_id=scim.user("ada@example.com", tenant=TENANT)["id"]
    )


@pytest.mark.django_db
def test_connector_for_a_saved_application_is_the_scim_connector(scim):
    application = ApplicationFactory(connector="scim", connector_config=scim.connector_config(TENANT))
    assert isinstance(connector_for(application), ScimConnector)
