"""Changelists issue a constant number of queries: the same at 5 rows as at 30.

Each row has every relation the list shows filled in (department, location,
manager, role, holder, requester ...), so a missing `list_select_related` shows
up as a difference between the two counts.
"""

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import ApprovalStep, ApprovalStepKind
from accounts.tests.factories import (
    AccessRequestFactory,
    ApplicationFactory,
    EmployeeFactory,
    EntitlementFactory,
    RoleFactory,
    UserFactory,
)
from assets.services import asset_check_out
from assets.tests.factories import HardwareAssetFactory, LicenseFactory

pytestmark = pytest.mark.django_db

_counter = itertools.count()


def _employee(manager=None):
    return EmployeeFactory(manager=manager, role=RoleFactory())


def make_employees(n):
    boss = _employee()
    for _ in range(n - 1):
        _employee(manager=boss)


def make_assets(n, acting_user):
    for _ in range(n):
        employee = _employee(manager=_employee())
        asset = HardwareAssetFactory(location=employee.location)
        asset_check_out(asset=asset, employee=employee, acting_user=acting_user)


def make_entitlements(n):
    for _ in range(n):
        EntitlementFactory()


def make_licenses(n):
    for _ in range(n):
        license_ = LicenseFactory()
        EntitlementFactory(application=license_.application)


def make_access_requests(n):
    for _ in range(n):
        employee = _employee(manager=_employee())
        request = AccessRequestFactory(employee=employee, requested_by=UserFactory())
        ApprovalStep.objects.create(request=request, order=1, kind=ApprovalStepKind.MANAGER, approver=employee.manager)


def _get_and_count(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return len(ctx.captured_queries), response


CASES = {
    "accounts_employee": lambda n, user: make_employees(n),
    "assets_hardwareasset": make_assets,
    "accounts_entitlement": lambda n, user: make_entitlements(n),
    "assets_license": lambda n, user: make_licenses(n),
    "accounts_accessrequest": lambda n, user: make_access_requests(n),
}


@pytest.mark.parametrize("changelist", list(CASES))
def test_changelist_query_count_does_not_grow_with_rows(client, it_admin, changelist, django_assert_num_queries):
    make_rows = CASES[changelist]
    url = reverse(f"admin:{changelist}_changelist")
    client.force_login(it_admin)
    client.get(url)  # warm per-process caches (content types, permissions)

    make_rows(5, it_admin)
    at_5, response = _get_and_count(client, url)
    assert response.context["cl"].result_count == 5

    make_rows(25, it_admin)
    with django_assert_num_queries(at_5):
        response = client.get(url)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 30


def test_employee_change_page_query_count_does_not_grow_with_holdings(client, it_admin, django_assert_num_queries):
    """The read-only entitlement and hardware inlines load their relations in one query each."""
    employee = _employee(manager=_employee())
    url = reverse("admin:accounts_employee_change", args=[employee.pk])
    client.force_login(it_admin)

    def give(n):
        for _ in range(n):
            EntitlementFactory(employee=employee, application=ApplicationFactory())
            asset_check_out(asset=HardwareAssetFactory(), employee=employee, acting_user=it_admin)

    client.get(url)  # warm per-process caches
    give(2)
    at_2, _ = _get_and_count(client, url)
    give(8)
    with django_assert_num_queries(at_2):
        response = client.get(url)
    assert response.status_code == 200


def _searchable(manager=None):
    return EmployeeFactory(manager=manager, role=RoleFactory(), last_name="Searchable")


def search_employees(n, user):
    boss = _searchable()
    for _ in range(n - 1):
        _searchable(manager=boss)


def search_assets(n, user):
    for _ in range(n):
        asset_check_out(asset=HardwareAssetFactory(), employee=_searchable(manager=_employee()), acting_user=user)


def search_entitlements(n, user):
    for _ in range(n):
        EntitlementFactory(employee=_searchable())


def search_access_requests(n, user):
    for _ in range(n):
        AccessRequestFactory(employee=_searchable(manager=_employee()), requested_by=UserFactory())


SEARCH_CASES = {
    "accounts_employee": search_employees,
    "assets_hardwareasset": search_assets,
    "accounts_entitlement": search_entitlements,
    "accounts_accessrequest": search_access_requests,
}


@pytest.mark.parametrize("changelist", list(SEARCH_CASES))
def test_search_query_count_does_not_grow_with_matches(client, it_admin, changelist, django_assert_num_queries):
    """Searching people (directly or as holders / requesters) looks them up once, however many match."""
    url = f"{reverse(f'admin:{changelist}_changelist')}?q=searchable"
    client.force_login(it_admin)
    client.get(url)  # warm per-process caches

    SEARCH_CASES[changelist](5, it_admin)
    at_5, response = _get_and_count(client, url)
    assert response.context["cl"].result_count == 5

    SEARCH_CASES[changelist](25, it_admin)
    with django_assert_num_queries(at_5):
        response = client.get(url)
    assert response.context["cl"].result_count == 30
