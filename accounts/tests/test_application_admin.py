"""The application admin: the connector config is checked, and the connection tried, before saving.

Against a real slapd and a real webhook receiver on 127.0.0.1.
"""

import json

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.connectors import SECRET_MASK
from accounts.models import Application, ConnectorType
from accounts.tests.factories import ApplicationFactory
from portal.testing.ldap_server import free_port

pytestmark = pytest.mark.django_db

ADD = reverse("admin:accounts_application_add")
CHANGELIST = reverse("admin:accounts_application_changelist")


def change_url(application):
    return reverse("admin:accounts_application_change", args=[application.pk])


def form_data(**overrides) -> dict:
    data = {
        "name": "Grafana",
        "description": "",
        "owner": "",
        "connector": ConnectorType.LDAP,
        "connector_config": "{}",
        "access_levels": json.dumps(["user", "admin"]),
        "approval_policy": "manager",
        "requestable": "on",
        "sensitivity": "low",
        "max_access_days": "",
        "knowledge_base_url": "",
    }
    for key, value in overrides.items():
        data[key] = json.dumps(value) if isinstance(value, dict | list) else value
    return data


def config_errors(response) -> list[str]:
    assert response.status_code == 200, "expected the form again, with errors"
    return list(response.context["adminform"].form.errors.get("connector_config", []))


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def admin_client(client, it_admin):
    client.force_login(it_admin)
    return client


def test_wrong_ldap_password_shows_the_servers_message_and_saves_nothing(admin_client, ldap_directory):
    config = ldap_directory.connector_config(bind_password="not-the-password")

    response = admin_client.post(ADD, form_data(connector_config=config))

    assert config_errors(response) == [
        f"LDAP bind to {ldap_directory.url} as {ldap_directory.admin_dn} failed: invalidCredentials"
    ]
    assert not Application.objects.exists()


def test_a_good_ldap_config_saves(admin_client, ldap_directory):
    config = ldap_directory.connector_config()

    response = admin_client.post(ADD, form_data(connector_config=config))

    assert response.status_code == 302, response.context["adminform"].form.errors
    application = Application.objects.get(name="Grafana")
    assert application.connector_config == config
    assert application.history.first().history_user.username == "it-admin"


def test_each_missing_setting_is_named(admin_client):
    response = admin_client.post(ADD, form_data(connector_config={"url": "ldap://127.0.0.1:389"}))

    errors = " | ".join(config_errors(response))
    for key in ("bind_dn", "bind_password", "users_dn", "groups"):
        assert f"“{key}” is missing" in errors
    assert not Application.objects.exists()


def test_levels_without_a_group_are_named(admin_client, ldap_directory):
    config = ldap_directory.connector_config(groups={"user": "app-users"})
    response = admin_client.post(ADD, form_data(connector_config=config))
    assert config_errors(response) == ["“groups” has no group for the level(s) admin."]


def test_an_unreachable_webhook_is_refused_unless_told_to_save_anyway(admin_client):
    url = f"http://127.0.0.1:{free_port()}/hooks/portal"
    config = {"url": url, "secret": "a-long-enough-secret"}

    response = admin_client.post(ADD, form_data(connector=ConnectorType.WEBHOOK, connector_config=config))
    [error] = config_errors(response)
    assert error.startswith(f"Webhook {url} is unreachable: ") and "Connection refused" in error
    assert not Application.objects.exists()

    response = admin_client.post(
        ADD, form_data(connector=ConnectorType.WEBHOOK, connector_config=config, skip_connection_check="on")
    )
    assert response.status_code == 302
    assert Application.objects.get().connector_config == config


def test_a_webhook_config_is_pinged_on_save(admin_client, webhook_server):
    response = admin_client.post(
        ADD, form_data(connector=ConnectorType.WEBHOOK, connector_config=webhook_server.connector_config())
    )
    assert response.status_code == 302
    assert [call.event for call in webhook_server.calls] == ["ping"]
    assert webhook_server.effects == []


def test_the_saved_secret_is_masked_and_kept(admin_client, ldap_directory):
    config = ldap_directory.connector_config()
    application = ApplicationFactory(name="Grafana", connector=ConnectorType.LDAP, connector_config=config)

    page = admin_client.get(change_url(application)).content.decode()
    assert ldap_directory.admin_password not in page
    assert SECRET_MASK in page

    masked = {**config, "bind_password": SECRET_MASK, "timeout": 7}
    response = admin_client.post(change_url(application), form_data(connector_config=masked))

    assert response.status_code == 302, response.context["adminform"].form.errors
    application.refresh_from_db()
    assert application.connector_config == {**config, "timeout": 7}  # the real password, re-checked by a bind


def test_a_masked_secret_with_nothing_stored_must_be_entered(admin_client, ldap_directory):
    config = ldap_directory.connector_config(bind_password=SECRET_MASK)
    response = admin_client.post(ADD, form_data(connector_config=config))
    assert config_errors(response) == ["“bind_password” shows the mask but no secret is stored for it: enter it."]


def test_an_unchanged_config_is_not_retried_on_save(admin_client):
    """Editing the description while the system is down still works; the config is still validated."""
    config = {"url": f"http://127.0.0.1:{free_port()}/hook", "secret": "a-long-enough-secret"}
    application = ApplicationFactory(name="Ops", connector=ConnectorType.WEBHOOK, connector_config=config)

    response = admin_client.post(
        change_url(application),
        form_data(
            name="Ops",
            connector=ConnectorType.WEBHOOK,
            connector_config={**config, "secret": SECRET_MASK},
            description="Now with a description",
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    application.refresh_from_db()
    assert application.description == "Now with a description"
    assert application.connector_config == config


def test_a_manual_application_needs_no_config(admin_client):
    response = admin_client.post(ADD, form_data(connector=ConnectorType.MANUAL))
    assert response.status_code == 302
    assert Application.objects.get().connector == "manual"


@pytest.fixture
def scim_peer():
    from accounts.connectors.scim import forget_discovery
    from portal.testing.scim_server import ScimServer

    forget_discovery()
    with ScimServer() as server:
        server.add_group("Grafana Admins", tenant="grafana")
        yield server
    forget_discovery()


def test_a_scim_config_is_checked_against_the_service_on_save(admin_client, scim_peer):
    config = scim_peer.connector_config("grafana", groups={"admin": "Grafana Admins"})
    response = admin_client.post(ADD, form_data(connector=ConnectorType.SCIM, connector_config=config))

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Application.objects.get().connector_config == config
    assert [c.resource for c in scim_peer.calls] == ["ServiceProviderConfig", "Users", "Groups"]
    assert scim_peer.effects() == [], "checking the connection writes nothing"


def test_a_scim_config_with_bad_settings_names_each_and_saves_nothing(admin_client):
    config = {"url": "ftp://app", "on_revoke": "burn", "groups": {"owner": "Owners"}}
    response = admin_client.post(ADD, form_data(connector=ConnectorType.SCIM, connector_config=config))

    errors = config_errors(response)
    assert "“url” must be an http:// or https:// URL with a host." in errors
    assert any(e.startswith("“token” is missing: the bearer token") for e in errors)
    assert "“on_revoke” must be one of deactivate, delete." in errors
    assert "“groups” names level(s) the application does not have: owner." in errors
    assert not Application.objects.exists()


def test_a_scim_group_missing_in_the_target_is_named_and_nothing_saved(admin_client, scim_peer):
    config = scim_peer.connector_config("grafana", groups={"admin": "Admins (typo)"})
    response = admin_client.post(ADD, form_data(connector=ConnectorType.SCIM, connector_config=config))

    [error] = config_errors(response)
    assert "These groups do not exist" in error and "Admins (typo) (for admin)" in error
    assert not Application.objects.exists()


def test_a_wrong_scim_token_is_refused_in_plain_words(admin_client, scim_peer):
    config = scim_peer.connector_config("grafana", token="wrong", groups={"admin": "Grafana Admins"})
    response = admin_client.post(ADD, form_data(connector=ConnectorType.SCIM, connector_config=config))

    [error] = config_errors(response)
    assert "refused Portal's bearer token (HTTP 401): check “token”" in error
    assert not Application.objects.exists()


def test_the_scim_token_is_masked_and_kept(admin_client, scim_peer):
    config = scim_peer.connector_config("grafana", groups={"admin": "Grafana Admins"})
    application = ApplicationFactory(
        name="Grafana", connector=ConnectorType.SCIM, connector_config=config, access_levels=["user", "admin"]
    )

    page = admin_client.get(change_url(application)).content.decode()
    assert scim_peer.token not in page and SECRET_MASK in page

    masked = {**config, "token": SECRET_MASK, "timeout": 7}
    response = admin_client.post(
        change_url(application), form_data(connector=ConnectorType.SCIM, connector_config=masked)
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    application.refresh_from_db()
    assert application.connector_config == {**config, "timeout": 7}  # the real token, re-checked by the service


def test_an_auditor_sees_the_config_without_its_secret(client, auditor, ldap_directory):
    config = ldap_directory.connector_config()
    application = ApplicationFactory(name="Grafana", connector=ConnectorType.LDAP, connector_config=config)
    client.force_login(auditor)

    response = client.get(change_url(application))

    assert response.status_code == 200
    page = response.content.decode()
    assert ldap_directory.admin_password not in page
    assert SECRET_MASK in page and ldap_directory.url in page


def test_the_test_connection_action_reports_each_application(admin_client, ldap_directory, webhook_server):
    good = ApplicationFactory(
        name="Grafana", connector=ConnectorType.LDAP, connector_config=ldap_directory.connector_config()
    )
    bad = ApplicationFactory(
        name="Wiki",
        connector=ConnectorType.LDAP,
        connector_config=ldap_directory.connector_config(bind_password="wrong"),
    )
    hook = ApplicationFactory(
        name="Ops", connector=ConnectorType.WEBHOOK, connector_config=webhook_server.connector_config()
    )
    manual = ApplicationFactory(name="Payroll", connector=ConnectorType.MANUAL)

    response = admin_client.post(
        CHANGELIST,
        {"action": "test_connection", "_selected_action": [good.pk, bad.pk, hook.pk, manual.pk]},
        follow=True,
    )

    messages = texts(response)
    assert "Connection works: Grafana, Ops." in messages
    assert (
        f"Wiki: LDAP bind to {ldap_directory.url} as {ldap_directory.admin_dn} failed: invalidCredentials" in messages
    )
    assert "Nothing to test for manual applications: Payroll." in messages


def test_helpdesk_cannot_run_the_test_connection_action(client, helpdesk):
    client.force_login(helpdesk)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert "test_connection" not in response.content.decode()
