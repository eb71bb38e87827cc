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
