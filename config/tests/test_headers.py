"""Pages for signed-in users are never kept by a shared browser or proxy: `Cache-Control: private, no-store`."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def directives(response) -> set[str]:
    return {part.strip() for part in response.headers.get("Cache-Control", "").split(",") if part.strip()}


@pytest.mark.parametrize("name", ["home", "access:my_access", "assets:my_hardware", "offboarding:my_returns"])
def test_self_service_pages_are_private_and_not_stored(client, employee_user, name):
    client.force_login(employee_user)
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert {"private", "no-store"} <= directives(response)
    assert "public" not in directives(response)


@pytest.mark.parametrize(
    "name", ["admin:index", "admin:accounts_employee_changelist", "admin:portal_auditevent_changelist"]
)
def test_admin_pages_are_private_and_not_stored(client, it_admin, name):
    client.force_login(it_admin)
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert {"private", "no-store"} <= directives(response)


def test_a_return_link_page_is_not_stored_either(client):
    """A leaver opens it without signing in (their login ended at the cut-off); it lists their own items."""
    from accounts.tests.factories import EmployeeFactory
    from offboarding.flows.returns import return_link_token

    response = client.get(reverse("offboarding:return_link", args=[return_link_token(EmployeeFactory())]))
    assert response.status_code < 500
    assert "no-store" in directives(response)


# --- Content-Security-Policy ------------------------------------------------------------------------


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    parts = [part.strip().split() for part in header.split(";") if part.strip()]
    return {part[0]: part[1:] for part in parts}


@pytest.mark.parametrize(
    ("who", "path"),
    [
        (None, "/login/"),
        (None, "/admin/login/"),
        ("employee_user", "/"),
        ("employee_user", "/access/request/"),
        ("employee_user", "/returns/"),
        ("it_admin", "/admin/"),
        ("it_admin", "/admin/accounts/employee/"),
        ("it_admin", "/admin/accounts/employee/add/"),
        ("it_admin", "/admin/portal/auditevent/"),
    ],
)
def test_every_page_has_a_content_security_policy(client, request, who, path):
    """No inline script, no plugin, no framing, no foreign origin: on the sign-in, self-service and admin pages."""
    if who:
        client.force_login(request.getfixturevalue(who))
    response = client.get(path)
    assert response.status_code == 200
    directives_ = policy(response)
    assert directives_["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in directives_["script-src"] and "'unsafe-eval'" not in directives_["script-src"]
    assert directives_["style-src"] == ["'self'"]
    assert directives_["object-src"] == ["'none'"] and directives_["frame-ancestors"] == ["'none'"]
    assert directives_["base-uri"] == ["'none'"] and directives_["form-action"] == ["'self'"]


def test_the_inline_handler_hash_matches_the_installed_export_template():
    """The one inline handler allowed (django-import-export's "Select all" toggle) is hashed from the
    installed template: an upgrade that changes it, or a new inline handler there, fails here."""
    import base64
    import hashlib
    import re
    from pathlib import Path

    import import_export
    from django.conf import settings

    template = Path(import_export.__file__).parent / "templates/admin/import_export/export.html"
    handlers = re.findall(r'\son[a-z]+="([^"]*)"', template.read_text())
    assert handlers, "the export template has no inline handler any more: drop its hash from the policy"
    hashes = {f"'sha256-{base64.b64encode(hashlib.sha256(h.strip().encode()).digest()).decode()}'" for h in handlers}
    assert hashes == set(settings.CSP_INLINE_HANDLER_HASHES)


# --- Page not found, with DEBUG on (the demo) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "path"),
    [
        (None, "/no-such-page/"),
        ("employee_user", "/no-such-page/"),
        ("employee_user", "/access/requests/999999/"),  # Http404 raised by a view
        ("it_admin", "/admin/no-such-app/"),  # the admin's catch-all view
    ],
)
def test_a_page_not_found_never_shows_djangos_debug_page(client, request, settings, who, path):
    settings.DEBUG = True
    if who:
        client.force_login(request.getfixturevalue(who))
    response = client.get(path)
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html and "There is nothing at this address" in html
    assert "URLconf" not in html and "DEBUG = True" not in html and "admin/" not in html.split("<main", 1)[1]
