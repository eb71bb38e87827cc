"""The people-and-access admin: search, filters, the employee page, deletion rules, grants and revokes.

What the hardware parts of the employee page do (its inline, hardware blocking a deletion) is
tested with the page's owner, in `offboarding/tests/test_employee_admin.py`.
"""

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import admin as accounts_admin
from accounts.admin import DepartmentListFilter
from accounts.models import Department, Employee, Entitlement, EntitlementStatus
from accounts.tests.factories import (
    AccessRequestFactory,
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    EntitlementFactory,
    admin_search_people,
)
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:accounts_employee_changelist")


def change_url(employee):
    return reverse("admin:accounts_employee_change", args=[employee.pk])


def delete_url(employee):
    return reverse("admin:accounts_employee_delete", args=[employee.pk])


def listed(response):
    return set(response.context["cl"].result_list)


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def people():
    return admin_search_people()


# --- Search and filters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "term",
    [
        "Lovelace",  # last name
        "lovelace",  # typed in lower case: names are stored capitalised
        "Love",  # the start of the last name
        "ada",  # first name
        "Ada Lovelace",  # "First Last"
        "ada  love",  # one name in full, the other's start; any spacing
        "Ad Lovelace",
        "Lovelace, Ada",  # "Last, First"
        "ada.lovelace@example.com",  # work email
        "Ada.Lovelace@Example.COM",
        "E100001",  # employee number
        "e100001",
    ],
    ids=str,
)
def test_search_finds_employee_by_name_email_or_number(client, helpdesk, people, term):
    ada, _, _ = people
    client.force_login(helpdesk)
    response = client.get(CHANGELIST, {"q": term})
    assert response.status_code == 200
    assert listed(response) == {ada}


def test_a_search_page_joins_only_its_own_rows_and_lists_the_same_people(client, helpdesk, monkeypatch):
    """A searched list is read through the page's ids (`ChangelistPaginator`); an unsearched one as Django does."""
    monkeypatch.setattr(accounts_admin.EmployeeAdminBase, "list_per_page", 2)
    for first in ("Ada", "Bea", "Cy"):
        EmployeeFactory(first_name=first, last_name="Lovelace")
    EmployeeFactory(first_name="Ada", last_name="Byron")
    client.force_login(helpdesk)

    def page(params):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(CHANGELIST, params)
        selects = [q["sql"] for q in captured if 'FROM "accounts_employee"' in q["sql"] and "LIMIT" in q["sql"]]
        return [e.first_name + " " + e.last_name for e in response.context["cl"].result_list], selects

    first, sql = page({"q": "Lovelace"})
    second, _ = page({"q": "Lovelace", "p": 2})
    assert first + second == ["Ada Lovelace", "Bea Lovelace", "Cy Lovelace"]
    assert any('"id" IN (SELECT' in q for q in sql), sql
    _, sql = page({})
    assert not any('"id" IN (SELECT' in q for q in sql), sql


@pytest.mark.parametrize(
    "term",
    [
        "Nobody",
        "velace",  # the middle of a name: not searched (it would read every row)
        "100001",  # part of a number: numbers match exactly
        "ada@example.com",
        "Alan Lovelace",
        "Ad Love",  # both only started: not searched (it would read everyone called Ad... or Love...)
    ],
    ids=str,
)
def test_search_without_a_match_lists_nobody(client, helpdesk, people, term):
    client.force_login(helpdesk)
    response = client.get(CHANGELIST, {"q": term})
    assert response.status_code == 200
    assert listed(response) == set()


def test_search_finds_people_with_a_common_name_or_a_multi_word_last_name(client, helpdesk, people):
    ada, _, _ = people
    other_ada = EmployeeFactory(first_name="Ada", last_name="van der Berg")
    client.force_login(helpdesk)
    assert listed(client.get(CHANGELIST, {"q": "ada"})) == {ada, other_ada}
    assert listed(client.get(CHANGELIST, {"q": "van der"})) == {other_ada}
    assert listed(client.get(CHANGELIST, {"q": "Ada van der Berg"})) == {other_ada}


def test_search_help_says_what_is_matched(client, helpdesk, people):
    client.force_login(helpdesk)
    html = client.get(CHANGELIST).content.decode()
    assert "employee number or work email" in html


def test_employee_autocomplete_uses_the_same_search(client, helpdesk, people):
    ada, _, _ = people
    client.force_login(helpdesk)
    url = reverse("admin:autocomplete")
    params = {"app_label": "accounts", "model_name": "department", "field_name": "head"}
    found = client.get(url, {**params, "term": "ada lov"}).json()["results"]
    assert [r["id"] for r in found] == [str(ada.pk)]


def test_filters_by_status_and_department(client, helpdesk, people):
    ada, alan, grace = people
    client.force_login(helpdesk)
    assert listed(client.get(CHANGELIST, {"status__exact": "terminated"})) == {grace}
    assert listed(client.get(CHANGELIST, {"status__exact": "active"})) == {ada, alan}
    assert listed(client.get(CHANGELIST, {"department__id__exact": alan.department_id})) == {alan}
    assert client.get(CHANGELIST, {"department__id__exact": "x"}).url.endswith("?e=1")


def department_choices(response):
    (spec,) = [f for f in response.context["cl"].filter_specs if f.title == "department"]
    return [choice["display"] for choice in spec.choices(response.context["cl"])]


def test_department_filter_lists_departments_only_while_there_are_few(client, helpdesk, people, monkeypatch):
    ada, alan, _ = people
    client.force_login(helpdesk)
    everyone = sorted(d.name for d in Department.objects.all())
    assert department_choices(client.get(CHANGELIST)) == ["All", *everyone]

    monkeypatch.setattr(DepartmentListFilter, "max_listed", 2)  # three departments: too many to list
    response = client.get(CHANGELIST)
    assert "department" not in [f.title for f in response.context["cl"].filter_specs if f.has_output()]
    response = client.get(CHANGELIST, {"department__id__exact": alan.department_id})
    assert department_choices(response) == ["All", alan.department.name]
    assert listed(response) == {alan}


def test_department_list_links_to_its_employees(client, helpdesk, people):
    ada, _, _ = people
    client.force_login(helpdesk)
    html = client.get(reverse("admin:accounts_department_changelist")).content.decode()
    assert f'<a href="{CHANGELIST}?department__id__exact={ada.department_id}">1 employee</a>' in html
    empty = DepartmentFactory()
    html = client.get(reverse("admin:accounts_department_changelist")).content.decode()
    assert f'<a href="{CHANGELIST}?department__id__exact={empty.pk}">0 employees</a>' in html


@pytest.fixture
def salesforce_access(people):
    """Ada's Salesforce access, Alan's revoked Salesforce access and Alan's Slack access."""
    ada, alan, _ = people
    app = ApplicationFactory(name="Salesforce")
    mine = EntitlementFactory(employee=ada, application=app)
    theirs = EntitlementFactory(
        employee=alan, application=app, status=EntitlementStatus.REVOKED, revoked_at=mine.granted_at
    )
    other = EntitlementFactory(employee=alan, application=ApplicationFactory(name="Slack"))
    return app, mine, theirs, other


@pytest.mark.parametrize("term", ["lovelace", "Ada Lovelace", "E100001", "ada.lovelace@example.com"])
def test_entitlement_search_by_holder(client, helpdesk, salesforce_access, term):
    _, mine, _, _ = salesforce_access
    client.force_login(helpdesk)
    assert listed(client.get(reverse("admin:accounts_entitlement_changelist"), {"q": term})) == {mine}


def test_entitlement_search_and_filter(client, helpdesk, salesforce_access):
    app, mine, theirs, other = salesforce_access
    client.force_login(helpdesk)
    url = reverse("admin:accounts_entitlement_changelist")
    assert listed(client.get(url, {"q": "salesforce"})) == {mine, theirs}
    assert listed(client.get(url, {"q": "turing"})) == {theirs, other}
    assert listed(client.get(url, {"q": "Sales"})) == set()  # application names match in full
    assert listed(client.get(url, {"q": "Nobody"})) == set()
    assert listed(client.get(url, {"status__exact": "active", "application__id__exact": app.pk})) == {mine}


def test_related_search_caps_the_people_it_looks_among(client, helpdesk, people, monkeypatch):
    ada, alan, _ = people
    monkeypatch.setattr(accounts_admin, "SEARCH_MAX_EMPLOYEES", 1)
    EntitlementFactory(employee=ada)
    EntitlementFactory(employee=alan)
    client.force_login(helpdesk)
    response = client.get(reverse("admin:accounts_entitlement_changelist"), {"q": "a"})  # Ada and Alan
    assert len(listed(response)) == 1  # what one of them holds
    assert any("More than 1 people match" in text for text in texts(response))


@pytest.mark.parametrize("term", ["Lovelace", "ada lovelace", "jira", "{pk}", "#{pk}", "Nobody"])
def test_access_request_search(client, helpdesk, people, term):
    ada, alan, _ = people
    request = AccessRequestFactory(employee=ada, application=ApplicationFactory(name="Jira"))
    AccessRequestFactory(employee=alan)
    client.force_login(helpdesk)
    url = reverse("admin:accounts_accessrequest_changelist")
    expected = set() if term == "Nobody" else {request}
    assert listed(client.get(url, {"q": term.format(pk=request.pk)})) == expected


# --- The employee page ------------------------------------------------------------------------------


def test_admin_save_records_history_with_the_acting_user(client, helpdesk, people):
    ada, _, _ = people
    client.force_login(helpdesk)
    response = client.get(change_url(ada))
    form = response.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update({"title": "Analyst", "start_date": "2024-01-15"})
    for prefix in ("entitlements", "hardware"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = client.post(change_url(ada), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    ada.refresh_from_db()
    assert ada.title == "Analyst"
    record = ada.history.first()
    assert record.history_user == helpdesk
    assert record.history_type == "~"


# --- Deleting employees ------------------------------------------------------------------------------


def test_delete_refused_for_open_access_request(client, it_admin, people):
    ada, _, _ = people
    AccessRequestFactory(employee=ada)
    client.force_login(it_admin)
    response = client.post(delete_url(ada), {"post": "yes"})
    assert "1 access request" in texts(response)[0]
    assert Employee.objects.filter(pk=ada.pk).exists()


def test_delete_allowed_when_clean_and_audited(client, it_admin, people):
    ada, _, _ = people
    client.force_login(it_admin)
    assert client.get(delete_url(ada)).status_code == 200
    response = client.post(delete_url(ada), {"post": "yes"})
    assert response.status_code == 302
    assert not Employee.objects.filter(pk=ada.pk).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.DELETE)
    assert event.actor == it_admin and event.target_id == str(ada.pk)
    assert Employee.history.filter(id=ada.pk, history_type="-").get().history_user == it_admin


def test_bulk_delete_of_clean_employees_goes_through_the_service(client, it_admin, people):
    ada, alan, grace = people
    client.force_login(it_admin)
    data = {"action": "delete_selected", "_selected_action": [ada.pk, grace.pk], "index": 0}
    confirm = client.post(CHANGELIST, data)
    assert confirm.status_code == 200  # Django's "are you sure?" page
    response = client.post(CHANGELIST, {**data, "post": "yes"})
    assert response.status_code == 302
    assert set(Employee.objects.all()) == {alan}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DELETE).count() == 2


# --- Entitlements: granted and revoked through services ----------------------------------------------


def test_add_entitlement_grants_through_the_service(client, helpdesk, people):
    ada, _, _ = people
    app = ApplicationFactory()
    client.force_login(helpdesk)
    response = client.post(
        reverse("admin:accounts_entitlement_add"),
        {"employee": ada.pk, "application": app.pk, "level": "admin", "expires_at_0": "", "expires_at_1": ""},
    )
    assert response.status_code == 302
    entitlement = Entitlement.objects.get(employee=ada, application=app)
    assert entitlement.status == EntitlementStatus.ACTIVE and entitlement.granted_at is not None
    assert entitlement.history.first().history_user == helpdesk
    assert AuditEvent.objects.get(action=AuditEvent.Action.GRANT).actor == helpdesk


def test_add_entitlement_shows_service_refusal_and_writes_nothing(client, helpdesk, people):
    _, _, grace = people
    app = ApplicationFactory()
    client.force_login(helpdesk)
    response = client.post(
        reverse("admin:accounts_entitlement_add"),
        {"employee": grace.pk, "application": app.pk, "level": "user", "expires_at_0": "", "expires_at_1": ""},
    )
    assert response.status_code == 200
    assert "is terminated and cannot be granted access" in str(response.context["adminform"].form.errors)
    assert not Entitlement.objects.exists()
    assert not AuditEvent.objects.exists()


def test_add_entitlement_refuses_a_second_live_grant(client, helpdesk, people):
    ada, _, _ = people
    existing = EntitlementFactory(employee=ada, level="user")
    client.force_login(helpdesk)
    response = client.post(
        reverse("admin:accounts_entitlement_add"),
        {"employee": ada.pk, "application": existing.application.pk, "level": "user"},
    )
    assert response.status_code == 200
    assert "already holds" in str(response.context["adminform"].form.errors)
    assert Entitlement.objects.count() == 1


def test_existing_entitlement_is_read_only_and_revoked_by_action(client, helpdesk, people):
    ada, _, _ = people
    entitlement = EntitlementFactory(employee=ada)
    client.force_login(helpdesk)
    response = client.get(reverse("admin:accounts_entitlement_change", args=[entitlement.pk]))
    assert response.context["adminform"].form.fields == {}
    response = client.post(
        reverse("admin:accounts_entitlement_changelist"),
        {"action": "revoke", "_selected_action": [entitlement.pk], "index": 0},
    )
    assert response.status_code == 302
    entitlement.refresh_from_db()
    assert entitlement.status == EntitlementStatus.REVOKED
    assert AuditEvent.objects.get(action=AuditEvent.Action.REVOKE).actor == helpdesk
    assert "Revoked" in texts(response)[0]


def test_department_autocomplete_and_list(client, helpdesk):
    DepartmentFactory(name="Finance", code="FIN")
    client.force_login(helpdesk)
    response = client.get(
        reverse("admin:autocomplete"),
        {"term": "fin", "app_label": "accounts", "model_name": "employee", "field_name": "department"},
    )
    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["Finance"]
