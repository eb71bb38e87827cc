"""SCIM connections in the admin: the token shown once on the page after creation, only its hash kept,
revoked by the action (audited), never deleted; helpdesk and auditors only read them."""

import pytest
from django.urls import reverse

from accounts.models import ScimConnection
from accounts.scim.services import token_hash
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db
ADD = reverse("admin:accounts_scimconnection_add")
CHANGELIST = reverse("admin:accounts_scimconnection_changelist")


def test_it_admin_creates_a_connection_and_sees_its_token_once(client, it_admin):
    client.force_login(it_admin)
    response = client.post(ADD, {"name": "Okta", "username_domain": ""})
    assert response.status_code == 200
    token = response.context["token"]
    connection = ScimConnection.objects.get(name="Okta")
    assert connection.token_hash == token_hash(token) and token.startswith(f"scim_{connection.token_prefix}_")
    assert token in response.content.decode()
    assert connection.service_user.username == "scim-okta" and not connection.service_user.is_active
    assert not connection.service_user.has_usable_password()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SCIM_CONNECTION_CREATED, actor=it_admin).exists()
    page = client.get(reverse("admin:accounts_scimconnection_change", args=[connection.pk])).content.decode()
    assert token not in page and connection.token_prefix in page
    history = client.get(reverse("admin:accounts_scimconnection_history", args=[connection.pk]))
    assert history.status_code == 200


def test_revoke_action_refuses_the_token_and_is_audited(client, it_admin):
    client.force_login(it_admin)
    token = client.post(ADD, {"name": "Entra ID"}).context["token"]
    connection = ScimConnection.objects.get(name="Entra ID")
    client.post(CHANGELIST, {"action": "revoke", "_selected_action": [connection.pk]})
    connection.refresh_from_db()
    assert connection.revoked_at is not None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SCIM_CONNECTION_REVOKED, actor=it_admin).exists()
    refused = client.get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert refused.status_code == 401


def test_a_duplicate_name_is_refused_on_the_form(client, it_admin):
    client.force_login(it_admin)
    client.post(ADD, {"name": "Okta"})
    response = client.post(ADD, {"name": "Okta"})
    assert response.status_code == 200 and "already exists" in response.content.decode()
    assert ScimConnection.objects.count() == 1


@pytest.mark.parametrize("who", ["helpdesk", "auditor"])
def test_helpdesk_and_auditors_only_read_connections(client, request, who):
    client.force_login(request.getfixturevalue(who))
    assert client.get(CHANGELIST).status_code == 200
    assert client.get(ADD).status_code == 403
    assert client.post(ADD, {"name": "Sneaky"}).status_code == 403
    assert not ScimConnection.objects.exists()
