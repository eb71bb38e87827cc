"""The LDAP connector against a real OpenLDAP slapd on 127.0.0.1 (the `ldap_directory` fixture).

Every operation is checked in the directory itself, and repeated to show it has its effect once.
"""

import threading

import pytest
from django.core.exceptions import ValidationError

from accounts.connectors import AccountState, ConnectorError
from accounts.connectors.ldap import LdapConnector, close_kept_connections
from accounts.tests.factories import ApplicationFactory, EmployeeFactory
from portal.testing.ldap_server import LdapServer, free_port


def make_connector(config: dict, name: str = "Grafana") -> LdapConnector:
    return LdapConnector(
        ApplicationFactory.build(name=name, connector="ldap", connector_config=config, access_levels=["user", "admin"])
    )


@pytest.fixture
def directory(ldap_directory):
    return ldap_directory


@pytest.fixture
def config(directory):
    return directory.connector_config()


@pytest.fixture
def connector(config):
    return make_connector(config)


@pytest.fixture
def ada():
    return EmployeeFactory.build(
        employee_number="E100001", first_name="Ada", last_name="Lovelace", work_email="ada.lovelace@example.com"
    )


ADA_DN = "uid=ada.lovelace,ou=people,dc=example,dc=com"


# --- provision --------------------------------------------------------------------------------------


def test_provision_creates_the_entry_and_the_membership(directory, config, connector, ada):
    assert connector.read_state(employee=ada, external_id="") == AccountState(exists=False)

    state = connector.provision(employee=ada, level="user", idempotency_key="task-1")

    assert state == AccountState(exists=True, active=True, level="user", external_id=ADA_DN)
    entry = directory.entry(ADA_DN)
    assert entry["uid"] == ["ada.lovelace"]
    assert entry["cn"] == ["Ada Lovelace"]
    assert entry["sn"] == ["Lovelace"]
    assert entry["givenName"] == ["Ada"]
    assert entry["mail"] == ["ada.lovelace@example.com"]
    assert entry["employeeNumber"] == ["E100001"]
    assert "inetOrgPerson" in entry["objectClass"]
    assert directory.members(config["groups"]["user"]) == {ADA_DN}
    assert directory.members(config["groups"]["admin"]) == set()
    assert connector.read_state(employee=ada, external_id=ADA_DN) == state


def test_provision_twice_makes_one_entry_and_one_membership(directory, config, connector, ada):
    first = connector.provision(employee=ada, level="user", idempotency_key="task-1")
    again = connector.provision(employee=ada, level="user", idempotency_key="task-1")
    other_key = connector.provision(employee=ada, level="user", idempotency_key="task-2")

    assert first == again == other_key
    assert directory.people() == [ADA_DN]
    assert directory.entry(config["groups"]["user"])["member"].count(ADA_DN) == 1


def test_two_deliveries_at_once_make_one_entry(directory, config, ada):
    """Two workers running the same task concurrently: the slower one finds the entry made."""
    barrier = threading.Barrier(4)
    results, errors = [], []

    def deliver():
        barrier.wait()
        try:
            results.append(make_connector(config).provision(employee=ada, level="user", idempotency_key="task-1"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert {state.external_id for state in results} == {ADA_DN}
    assert directory.people() == [ADA_DN]
    assert directory.members(config["groups"]["user"]) == {ADA_DN}


def test_provision_finds_the_entry_by_employee_number_and_updates_it(directory, connector, ada):
    connector.provision(employee=ada, level="user", idempotency_key="task-1")
    ada.last_name, ada.work_email = "King", "ada.king@example.com"

    state = connector.provision(employee=ada, level="user", idempotency_key="task-2")

    assert state.external_id == ADA_DN  # the same entry, not a second one
    assert directory.people() == [ADA_DN]
    entry = directory.entry(ADA_DN)
    assert entry["sn"] == ["King"]
    assert entry["mail"] == ["ada.king@example.com"]
    assert entry["cn"] == ["Ada King"]


def test_provision_refuses_a_uid_held_by_someone_else(directory, connector, ada):
    connector.provision(employee=ada, level="user", idempotency_key="task-1")
    namesake = EmployeeFactory.build(employee_number="E999999", work_email="ada.lovelace@other.example.com")

    with pytest.raises(
        ConnectorError, match="already exists .* for another person \\(employeeNumber E100001\\)"
    ) as exc:
        connector.provision(employee=namesake, level="user", idempotency_key="task-2")

    assert exc.value.retryable is False
    assert directory.people() == [ADA_DN]


def test_uid_from_employee_number(directory, config, ada):
    connector = make_connector({**config, "uid_from": "employee_number"})
    state = connector.provision(employee=ada, level="user", idempotency_key="task-1")
    assert state.external_id == "uid=E100001,ou=people,dc=example,dc=com"


def test_short_group_names_resolve_under_groups_dn(directory, config, ada):
    connector = make_connector({**config, "groups": {"user": "app-users", "admin": "app-admins"}})
    connector.provision(employee=ada, level="admin", idempotency_key="task-1")
    assert directory.members("cn=app-admins,ou=groups,dc=example,dc=com") == {ADA_DN}


# --- change level -----------------------------------------------------------------------------------


def test_change_level_moves_the_membership(directory, config, connector, ada):
    connector.provision(employee=ada, level="user", idempotency_key="task-1")

    state = connector.change_level(employee=ada, external_id=ADA_DN, level="admin", idempotency_key="task-2")
    again = connector.change_level(employee=ada, external_id=ADA_DN, level="admin", idempotency_key="task-2")

    assert state == again == AccountState(exists=True, active=True, level="admin", external_id=ADA_DN)
    assert directory.members(config["groups"]["user"]) == set()
    assert directory.members(config["groups"]["admin"]) == {ADA_DN}


def test_a_level_without_a_group_is_refused(connector, ada):
    with pytest.raises(ConnectorError, match="no LDAP group is configured for the level 'owner'"):
        connector.provision(employee=ada, level="owner", idempotency_key="task-1")


# --- revoke and disable ------------------------------------------------------------------------------


def test_revoke_removes_the_membership_and_keeps_the_entry(directory, config, connector, ada):
    connector.provision(employee=ada, level="admin", idempotency_key="task-1")

    state = connector.revoke(employee=ada, external_id=ADA_DN, idempotency_key="task-2")
    again = connector.revoke(employee=ada, external_id=ADA_DN, idempotency_key="task-2")

    assert state == again == AccountState(exists=True, active=False, level=None, external_id=ADA_DN)
    assert directory.people() == [ADA_DN]
    assert directory.members(config["groups"]["admin"]) == set()
    assert directory.members(config["groups"]["user"]) == set()


def test_revoke_can_delete_the_entry(directory, config, ada):
    connector = make_connector({**config, "on_revoke": "delete_entry"})
    connector.provision(employee=ada, level="user", idempotency_key="task-1")

    assert connector.revoke(employee=ada, external_id=ADA_DN, idempotency_key="task-2") == AccountState(exists=False)
    assert connector.revoke(employee=ada, external_id=ADA_DN, idempotency_key="task-2") == AccountState(exists=False)
    assert directory.people() == []
    assert directory.members(config["groups"]["user"]) == set()  # no dangling member DN


def test_revoke_can_disable_the_entry(directory, config, ada):
    connector = make_connector({**config, "on_revoke": "disable_entry"})
    connector.provision(employee=ada, level="user", idempotency_key="task-1")

    state = connector.revoke(employee=ada, external_id=ADA_DN, idempotency_key="task-2")

    assert state == AccountState(exists=True, active=False, level=None, external_id=ADA_DN)
    assert directory.entry(ADA_DN)["employeeType"] == ["disabled"]


def test_revoke_of_the_last_member_leaves_a_placeholder(directory, config, connector, ada):
    """groupOfNames needs a member: when the person is the only one, the bind DN stays in."""
    connector.provision(employee=ada, level="user", idempotency_key="task-1")
    group = config["groups"]["user"]
    with directory.connection() as conn:  # a group someone else made, with no placeholder
        conn.modify(group, {"member": [("MODIFY_DELETE", [directory.admin_dn])]})
        assert conn.result["result"] == 0
    assert directory.entry(group)["member"] == [ADA_DN]

    connector.revoke(employee=ada, external_id=ADA_DN, idempotency_key="task-2")

    assert directory.entry(group)["member"] == [directory.admin_dn]


def test_revoke_of_someone_never_provisioned_changes_nothing(directory, connector, ada):
    assert connector.revoke(employee=ada, external_id="", idempotency_key="task-1") == AccountState(exists=False)
    assert connector.disable(employee=ada, external_id="", idempotency_key="task-1") == AccountState(exists=False)
    assert directory.people() == []


def test_disable_marks_the_entry_and_provision_enables_it_again(directory, config, connector, ada):
    connector.provision(employee=ada, level="user", idempotency_key="task-1")

    state = connector.disable(employee=ada, external_id=ADA_DN, idempotency_key="task-2")
    again = connector.disable(employee=ada, external_id=ADA_DN, idempotency_key="task-2")

    assert state == again == AccountState(exists=True, active=False, level="user", external_id=ADA_DN)
    assert directory.entry(ADA_DN)["employeeType"] == ["disabled"]
    assert directory.members(config["groups"]["user"]) == {ADA_DN}  # kept: re-enabling restores it

    state = connector.provision(employee=ada, level="user", idempotency_key="task-3")
    assert state.active is True
    assert "employeeType" not in directory.entry(ADA_DN)


def test_a_stale_external_id_falls_back_to_the_employee_number(directory, connector, ada):
    connector.provision(employee=ada, level="user", idempotency_key="task-1")
    stale = "uid=someone-else,ou=people,dc=example,dc=com"
    assert connector.read_state(employee=ada, external_id=stale).external_id == ADA_DN


# --- forget (after the retention purge) -------------------------------------------------------------


def purged(employee):
    """The same person as the retention purge leaves them: names and email replaced, the number kept."""
    return EmployeeFactory.build(
        pk=employee.pk,
        employee_number=employee.employee_number,
        first_name="Former employee",
        last_name=employee.employee_number,
        work_email=f"former-{employee.employee_number.lower()}@anonymised.invalid",
    )


def test_forget_deletes_the_entry_found_by_employee_number(directory, config, connector, ada):
    connector.provision(employee=ada, level="admin", idempotency_key="task-1")
    stale = "uid=former-e100001-1,ou=people,dc=example,dc=com"  # the purge rewrote the DN Portal kept

    assert connector.forget(employee=purged(ada), external_id=stale, idempotency_key="t-2") == AccountState(
        exists=False
    )
    assert connector.forget(employee=purged(ada), external_id=stale, idempotency_key="t-2") == AccountState(
        exists=False
    )
    assert directory.people() == []
    assert directory.members(config["groups"]["admin"]) == set()  # no dangling member DN


def test_forget_can_scrub_the_entry_instead(directory, config, ada):
    connector = make_connector({**config, "on_forget": "scrub_entry"})
    connector.provision(employee=ada, level="user", idempotency_key="task-1")

    state = connector.forget(employee=purged(ada), external_id=ADA_DN, idempotency_key="task-2")
    again = connector.forget(employee=purged(ada), external_id=state.external_id, idempotency_key="task-2")

    scrubbed_dn = "uid=former-e100001,ou=people,dc=example,dc=com"
    assert state == again == AccountState(exists=True, active=False, level=None, external_id=scrubbed_dn)
    assert directory.people() == [scrubbed_dn]
    entry = directory.entry(scrubbed_dn)
    assert entry["cn"] == ["Former employee E100001"] and entry["sn"] == ["E100001"]
    assert entry["mail"] == ["former-e100001@anonymised.invalid"] and entry["employeeType"] == ["disabled"]
    assert not any("ada" in value.lower() or "lovelace" in value.lower() for v in entry.values() for value in v)
    assert directory.members(config["groups"]["user"]) == set()


def test_forget_of_someone_the_directory_never_had_changes_nothing(directory, connector, ada):
    assert connector.forget(employee=purged(ada), external_id="", idempotency_key="t-1") == AccountState(exists=False)
    assert directory.people() == []


# --- failures: the server's own words ----------------------------------------------------------------


def test_a_wrong_bind_password_fails_with_the_servers_message(directory, config, ada):
    connector = make_connector({**config, "bind_password": "not-the-password"})

    with pytest.raises(ConnectorError) as exc:
        connector.provision(employee=ada, level="user", idempotency_key="task-1")

    assert str(exc.value) == f"LDAP bind to {directory.url} as {directory.admin_dn} failed: invalidCredentials"
    assert exc.value.retryable is False
    with pytest.raises(ConnectorError, match="invalidCredentials"):
        connector.check_connection()
    assert directory.people() == []


def test_an_unreachable_server_fails_with_the_reason(config, ada):
    url = f"ldap://127.0.0.1:{free_port()}"
    connector = make_connector({**config, "url": url, "timeout": 2})

    with pytest.raises(ConnectorError, match=f"LDAP server {url} is unreachable: .*Connection refused") as exc:
        connector.provision(employee=ada, level="user", idempotency_key="task-1")

    assert exc.value.retryable is True


def test_check_connection_passes_with_a_good_config(connector):
    connector.check_connection()


def test_check_connection_names_missing_groups_and_base(directory, config):
    missing_group = "cn=nobody-made-this,ou=groups,dc=example,dc=com"
    with pytest.raises(ConnectorError, match=f"These groups do not exist on {directory.url}: {missing_group}"):
        make_connector({**config, "groups": {"user": missing_group}}).check_connection()
    with pytest.raises(ConnectorError, match="users_dn ou=staff,dc=example,dc=com does not exist"):
        make_connector({**config, "users_dn": "ou=staff,dc=example,dc=com"}).check_connection()


def test_the_password_may_come_from_the_environment(monkeypatch, directory, config, ada):
    monkeypatch.setenv("PORTAL_TEST_LDAP_PASSWORD", directory.admin_password)
    settings = {k: v for k, v in config.items() if k != "bind_password"}
    connector = make_connector({**settings, "bind_password_env": "PORTAL_TEST_LDAP_PASSWORD"})

    LdapConnector.validate_config(connector.config, access_levels=["user", "admin"])
    assert connector.provision(employee=ada, level="user", idempotency_key="task-1").active

    monkeypatch.delenv("PORTAL_TEST_LDAP_PASSWORD")
    with pytest.raises(ConnectorError, match="names PORTAL_TEST_LDAP_PASSWORD, which is not set"):
        connector.check_connection()


# --- validate_config (no server needed) ------------------------------------------------------------------


def errors_of(config: dict, levels=("user", "admin")) -> str:
    with pytest.raises(ValidationError) as exc:
        LdapConnector.validate_config(config, access_levels=list(levels))
    return " | ".join(exc.value.messages)


GOOD = {
    "url": "ldap://127.0.0.1:389",
    "bind_dn": "cn=admin,dc=example,dc=com",
    "bind_password": "secret",
    "users_dn": "ou=people,dc=example,dc=com",
    "groups": {"user": "cn=users,ou=groups,dc=example,dc=com", "admin": "cn=admins,ou=groups,dc=example,dc=com"},
}


def test_validate_config_accepts_a_good_config():
    LdapConnector.validate_config(GOOD, access_levels=["user", "admin"])


def test_validate_config_names_each_missing_setting():
    message = errors_of({})
    for key in ("url", "bind_dn", "bind_password", "users_dn", "groups"):
        assert f"“{key}” is missing" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"url": "http://ldap.example.com"}, "“url” must look like ldap://host:port"),
        ({"url": "ldap://host:99999"}, "“url” has a port that is not a number"),
        ({"bind_dn": "not a dn"}, "“bind_dn” is not a valid DN"),
        ({"groups": ["cn=x"]}, "“groups” must map each access level"),
        ({"groups": {"user": "cn=users,dc=example,dc=com"}}, "“groups” has no group for the level(s) admin"),
        (
            {"groups": {**GOOD["groups"], "owner": "cn=owners,dc=example,dc=com"}},
            "names level(s) the application does not have: owner",
        ),
        ({"groups": {"user": "users", "admin": "admins"}}, "“groups.user” is a short name, so “groups_dn” must be set"),
        ({"on_revoke": "shred"}, "“on_revoke” must be one of remove_membership, disable_entry, delete_entry"),
        ({"on_forget": "shred"}, "“on_forget” must be one of delete_entry, scrub_entry"),
        ({"timeout": "soon"}, "“timeout” must be a number of seconds"),
        ({"use_starttls": "yes"}, "“use_starttls” must be true or false"),
        ({"server_uri": "ldap://x"}, "“server_uri” not an LDAP setting"),
        ({"bind_password_env": "X"}, "“bind_password” and “bind_password_env” are both set"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_validate_config_names_the_bad_setting(change, expected):
    assert expected in errors_of({**GOOD, **change})


def test_an_invalid_saved_config_fails_the_task_with_the_reason(ada):
    connector = make_connector({"server_uri": "ldap://127.0.0.1:3389", "base_dn": "ou=people,dc=example,dc=com"})
    with pytest.raises(
        ConnectorError, match="Grafana: the ldap connector config is not valid: .*“url” is missing"
    ) as exc:
        connector.provision(employee=ada, level="user", idempotency_key="task-1")
    assert exc.value.retryable is False


# --- connections kept between calls ---------------------------------------------------------------


@pytest.fixture
def no_kept_connection():
    """Start without a kept connection (an earlier test's would serve this one's first call)."""
    close_kept_connections()
    yield
    close_kept_connections()


def connects_and_binds(directory) -> tuple[int, int]:
    """(client connections, binds) the front door saw since the directory was reset; an unbind closing
    an earlier test's connection (it may reach the proxy after the reset) is not this test's."""
    calls = [c for c in directory.calls if c.op != "unbind"]
    return len({c.connection for c in calls}), sum(c.op == "bind" for c in calls)


def test_one_connection_and_one_bind_serve_many_calls(directory, config, connector, ada, no_kept_connection):
    """A layoff's revocations reuse the worker's bound connection: 1 connect and 1 bind for 12 calls
    (before: one of each per call), and each call still has its effect."""
    connector.provision(employee=ada, level="user", idempotency_key="task-1")
    for round_ in range(5):
        assert not connector.revoke(employee=ada, external_id=ADA_DN, idempotency_key=f"r-{round_}").active
        assert connector.provision(employee=ada, level="user", idempotency_key=f"p-{round_}").active
    # Another connector object for the same application (each task makes its own): same connection.
    assert make_connector(config).read_state(employee=ada, external_id=ADA_DN).level == "user"

    assert connects_and_binds(directory) == (1, 1)
    group_changes = [e for e in directory.effects(dn=config["groups"]["user"]) if e.op == "modify"]
    assert len(group_changes) == 11  # 6 additions, 5 removals: nothing skipped, nothing twice


def test_a_dropped_connection_is_replaced_once_and_the_call_has_its_effect_once(
    directory, config, connector, ada, no_kept_connection
):
    connector.provision(employee=ada, level="admin", idempotency_key="task-1")
    assert directory.drop_connections() >= 1  # the server restarted, or a firewall dropped it (ours among them)

    state = connector.revoke(employee=ada, external_id=ADA_DN, idempotency_key="task-2")

    assert state == AccountState(exists=True, active=False, level=None, external_id=ADA_DN)
    assert directory.members(config["groups"]["admin"]) == set()
    assert connects_and_binds(directory) == (2, 2)
    removals = [e for e in directory.effects(dn=config["groups"]["admin"]) if e.op == "modify"]
    assert len(removals) == 2  # the provision's addition, the revoke's removal: once each
    connector.read_state(employee=ada, external_id=ADA_DN)
    assert connects_and_binds(directory) == (2, 2)  # the new connection is the one kept


def test_a_dropped_connection_to_a_server_that_is_gone_fails_the_call(ada, no_kept_connection):
    """Reconnecting once: when the new connection cannot be made either, the call fails, retryable."""
    with LdapServer() as own:
        connector = make_connector(own.connector_config())
        connector.provision(employee=ada, level="user", idempotency_key="task-1")
        url = own.url
    # Stopped: the kept connection is closed by the other side and no new one can be made.

    with pytest.raises(ConnectorError, match=f"LDAP server {url} (is unreachable|stopped answering)") as exc:
        connector.revoke(employee=ada, external_id=ADA_DN, idempotency_key="task-2")
    assert exc.value.retryable is True


def test_each_thread_and_each_bind_identity_has_its_own_connection(
    directory, config, connector, ada, no_kept_connection
):
    connector.provision(employee=ada, level="user", idempotency_key="task-1")
    other_thread = threading.Thread(target=lambda: connector.read_state(employee=ada, external_id=ADA_DN))
    other_thread.start()
    other_thread.join(timeout=30)
    assert connects_and_binds(directory) == (2, 2)  # ldap3 connections are not shared across threads

    with pytest.raises(ConnectorError, match="invalidCredentials"):
        make_connector({**config, "bind_password": "not-the-password"}).read_state(employee=ada, external_id=ADA_DN)
    assert connects_and_binds(directory) == (3, 3)  # another password is another identity, never the kept one
    connector.read_state(employee=ada, external_id=ADA_DN)
    assert connects_and_binds(directory) == (3, 3)


def test_check_connection_binds_afresh(directory, connector, ada, no_kept_connection):
    """Checking the settings must prove the password works now, not reuse an old bind."""
    connector.provision(employee=ada, level="user", idempotency_key="task-1")
    connector.check_connection()
    connector.check_connection()
    assert connects_and_binds(directory) == (3, 3)
