"""Personal API tokens: made on /api/tokens/ (secret shown once, only its hash stored), revoked there or in
the admin (audited), refused once revoked or expired or when the login is disabled; last use stamped."""

import datetime
import hashlib

import pytest
from django.urls import reverse
from django.utils import timezone

from api.models import ApiToken
from api.services import api_token_create, api_token_revoke
from api.tests.conftest import ApiClient
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_a_person_makes_a_token_on_the_page_sees_it_once_and_uses_it(client, employee_user, password):
    client.force_login(employee_user)
    response = client.post(reverse("api:tokens"), {"name": "nightly sync", "expires_in_days": "30"})
    assert response.status_code == 200
    secret = response.context["secret"]
    assert secret.startswith("portal_") and len(secret) > 40
    assert secret in response.content.decode()
    token = ApiToken.objects.get(user=employee_user)
    assert token.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(list(ApiToken.objects.values_list()))  # only the hash is stored
    assert token.expires_at > timezone.now() + datetime.timedelta(days=29)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.API_TOKEN_CREATED, target_id=str(token.pk)).exists()
    # Shown once: the list page afterwards shows the prefix only.
    listing = client.get(reverse("api:tokens")).content.decode()
    assert secret not in listing and token.prefix in listing

    me = ApiClient(secret).get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["username"] == employee_user.username
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_the_page_refuses_a_token_without_a_name(client, employee_user):
    client.force_login(employee_user)
    response = client.post(reverse("api:tokens"), {"name": "  ", "expires_in_days": ""})
    assert response.status_code == 200
    assert not ApiToken.objects.exists()
    assert response.context["form"].errors


def test_a_revoked_token_answers_401_and_the_revocation_is_audited(client, employee_user):
    token, secret = api_token_create(user=employee_user, name="ci", expires_in_days=None, acting_user=employee_user)
    assert ApiClient(secret).get("/api/v1/me/").status_code == 200
    client.force_login(employee_user)
    response = client.post(reverse("api:token_revoke", args=[token.pk]))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == employee_user
    answer = ApiClient(secret).get("/api/v1/me/")
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == 'Bearer realm="api"'
    assert "revoked" in answer.json()["detail"]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.API_TOKEN_REVOKED, target_id=str(token.pk)).count() == 1
    api_token_revoke(token=token, acting_user=employee_user)  # idempotent: no second event
    assert AuditEvent.objects.filter(action=AuditEvent.Action.API_TOKEN_REVOKED).count() == 1


def test_nobody_revokes_someone_elses_token(client, employee_user, helpdesk):
    token, secret = api_token_create(user=helpdesk, name="mine", expires_in_days=None, acting_user=helpdesk)
    client.force_login(employee_user)
    assert client.post(reverse("api:token_revoke", args=[token.pk])).status_code == 404
    assert ApiClient(secret).get("/api/v1/me/").status_code == 200


def test_it_admin_revokes_a_token_in_the_admin(client, it_admin, employee_user):
    token, secret = api_token_create(user=employee_user, name="leaked", expires_in_days=None, acting_user=employee_user)
    client.force_login(it_admin)
    changelist = reverse("admin:api_apitoken_changelist")
    assert client.get(changelist).status_code == 200
    client.post(changelist, {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_by == it_admin
    assert ApiClient(secret).get("/api/v1/me/").status_code == 401


def test_an_expired_token_or_a_disabled_login_authenticates_nobody(employee_user):
    token, secret = api_token_create(user=employee_user, name="short", expires_in_days=1, acting_user=employee_user)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert ApiClient(secret).get("/api/v1/me/").status_code == 401
    _, other = api_token_create(user=employee_user, name="long", expires_in_days=None, acting_user=employee_user)
    assert ApiClient(other).get("/api/v1/me/").status_code == 200
    employee_user.is_active = False
    employee_user.save()
    assert ApiClient(other).get("/api/v1/me/").status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer portal_nope", "Bearer a b", "Bearer not-a-portal-token", "Bearer portal_" + "x" * 300],
)
def test_a_bad_authorization_header_answers_401_in_json(employee_user, header):
    from django.test import Client

    response = Client().get("/api/v1/me/", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["detail"]


def test_last_use_is_stamped_at_most_once_a_minute(employee_user, django_assert_num_queries):
    token, secret = api_token_create(user=employee_user, name="ci", expires_in_days=None, acting_user=employee_user)
    client = ApiClient(secret)
    client.get("/api/v1/me/")
    token.refresh_from_db()
    first = token.last_used_at
    client.get("/api/v1/me/")
    token.refresh_from_db()
    assert token.last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - datetime.timedelta(minutes=2))
    client.get("/api/v1/me/")
    token.refresh_from_db()
    assert token.last_used_at > first


def test_a_session_signed_in_user_uses_the_api_too(client, employee_user):
    client.force_login(employee_user)
    assert client.get("/api/v1/me/").json()["token"] is None
