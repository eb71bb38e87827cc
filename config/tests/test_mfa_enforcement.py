"""Enforcement of the staff second factor, swept over every admin URL the resolver knows.

A staff user signed in with the password only is sent to verification (or to enrolment, without a
device) on every admin URL and every self-service page; the REST API with a session answers 403 in
JSON, a personal token is not affected (decided: a token is made only from a verified session); a
verified session opens the admin; a removed device verifies no longer.
"""

import re

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from api.services import api_token_create
from portal.mfa import second_factor_device_remove

pytestmark = pytest.mark.django_db

VERIFY = reverse("mfa:verify")
ENROL = reverse("mfa:enrol")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern.name


def _concrete(route: str) -> str:
    """A path for a route: every parameter filled with "1" (the redirect comes before any lookup)."""
    path = re.sub(r"<(?:\w+:)?\w+>", "1", route)
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "1", path)
    path = path.replace("^", "").replace("$", "").replace("\\", "")
    return "/" + path.lstrip("/")


def admin_paths() -> list[str]:
    """Every URL of the admin site, as the resolver lists it (models, actions, history, imports, ...)."""
    admin_prefix = reverse("admin:index")
    urls = _walk(admin.site.get_urls(), admin_prefix.lstrip("/"))
    return sorted({_concrete(route) for route, name in urls if name != "logout"})


def self_service_paths() -> list[str]:
    resolver = get_resolver()
    paths = set()
    for namespace in ("access", "assets", "offboarding"):
        prefix, sub = resolver.namespace_dict[namespace]
        paths |= {_concrete(prefix + str(p.pattern)) for p in sub.url_patterns}
    paths.add(reverse("home"))
    paths.add(reverse("api:tokens"))
    return sorted(paths)


ADMIN_PATHS = admin_paths()


def test_the_sweep_covers_the_whole_admin():
    assert len(ADMIN_PATHS) > 150, len(ADMIN_PATHS)
    for path in ("/admin/", "/admin/accounts/employee/1/change/", "/admin/otp_totp/totpdevice/", "/admin/login/"):
        assert path in ADMIN_PATHS, path


@pytest.fixture
def root(db):
    user = get_user_model().objects.create_superuser(username="root", email="root@example.com", password="x")
    TOTPDevice.objects.create(user=user, name="Phone", confirmed=True)
    return user


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_password_only_staff_is_sent_to_verify_on_every_admin_url(client, root, path):
    client.force_login(root, second_factor=False)
    response = client.get(path)
    assert response.status_code == 302, f"{path} answered {response.status_code}"
    assert response["Location"].startswith(f"{VERIFY}?next="), f"{path} → {response['Location']}"


@pytest.mark.parametrize("path", self_service_paths())
def test_password_only_staff_is_sent_to_verify_on_the_self_service_pages_too(client, root, path):
    client.force_login(root, second_factor=False)
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith(f"{VERIFY}?next="), path


def test_staff_without_a_device_is_sent_to_enrol(client, it_admin):
    client.force_login(it_admin, second_factor=False)
    response = client.get("/admin/accounts/employee/")
    assert response["Location"] == f"{ENROL}?next=%2Fadmin%2Faccounts%2Femployee%2F"


def test_a_verified_session_opens_the_admin_and_a_removed_device_verifies_no_more(client, it_admin, helpdesk):
    client.force_login(it_admin)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/accounts/employee/").status_code == 200

    device = TOTPDevice.objects.get(user=it_admin)
    second_factor_device_remove(device=device, acting_user=helpdesk)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith(ENROL)


def test_an_unconfirmed_device_does_not_verify(client, it_admin):
    client.force_login(it_admin)
    TOTPDevice.objects.filter(user=it_admin).update(confirmed=False)
    assert client.get("/admin/").status_code == 302


def test_logout_works_without_the_second_factor(client, root):
    client.force_login(root, second_factor=False)
    response = client.post(reverse("admin:logout"))
    assert response.status_code == 302 and not response["Location"].startswith(VERIFY)
    assert client.get("/admin/")["Location"].startswith("/admin/login/"), "signed out"


# --- The REST API: a session must be verified, a personal token is its own credential -------------


def test_api_with_an_unverified_staff_session_answers_403_in_json(client, root):
    client.force_login(root, second_factor=False)
    response = client.get("/api/v1/employees/")
    assert response.status_code == 403
    assert "second factor" in response.json()["detail"]


def test_api_with_a_verified_staff_session_answers(client, root):
    client.force_login(root)
    assert client.get("/api/v1/employees/").status_code == 200


def test_api_token_of_a_staff_user_is_not_asked_for_a_second_factor(client, root):
    _token, secret = api_token_create(user=root, name="sync", expires_in_days=1, acting_user=root)
    response = client.get("/api/v1/employees/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200


def test_an_unverified_staff_session_cannot_make_an_api_token(client, root):
    client.force_login(root, second_factor=False)
    response = client.post(reverse("api:tokens"), {"name": "sneaky", "expires_in_days": 1})
    assert response.status_code == 302 and response["Location"].startswith(VERIFY)
    assert not root.api_tokens.exists()


def test_a_self_service_user_without_a_device_is_not_asked(client, employee_user):
    client.force_login(employee_user)
    assert client.get("/").status_code == 200
