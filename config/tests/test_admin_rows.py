"""Changelists that cost what one page costs: rows built without per-row template or resolver work give
exactly Django's HTML, and a filter's count stops at a cap and says "more than N".

`portal.admin.CheapChangelistMixin` replaces Django's selection checkbox (a widget rendered through the
form template engine, per row) and `CheapRowsChangeList` the change links (a `reverse()` per link)
with the same markup built directly; the admin's JavaScript (select all, actions) and the tests that
count `name="_selected_action"` rely on that markup.
"""

import pytest
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.urls import reverse

from accounts.models import Employee, EmployeeStatus
from accounts.tests.factories import EmployeeFactory
from assets.models import HardwareAsset
from portal.admin import CheapChangelistMixin, CheapRowsChangeList, EstimatedCountPaginator, PortalModelAdmin

pytestmark = pytest.mark.django_db


def test_every_portal_model_admin_has_cheap_rows():
    assert issubclass(PortalModelAdmin, CheapChangelistMixin)
    assert isinstance(admin.site._registry[Employee], CheapChangelistMixin)
    assert isinstance(admin.site._registry[HardwareAsset], CheapChangelistMixin)


def test_selection_checkbox_is_djangos_markup():
    model_admin = admin.site._registry[Employee]
    person = EmployeeFactory(first_name='Zoë "<b>', preferred_name="", last_name="O'Brien & Søn")
    ours = model_admin.action_checkbox(person)
    assert ours == admin.ModelAdmin.action_checkbox(model_admin, person)
    assert "&lt;b&gt;" in ours and "<b>" not in ours  # the name is escaped once, as Django does


@pytest.mark.parametrize("pk", [1, 4242, "a/b_c?d", "portal-pk-marker", "x portal-pk-marker y"])
def test_change_links_are_djangos(rf, it_admin, pk):
    request = rf.get(reverse("admin:accounts_employee_changelist"))
    request.user = it_admin
    changelist = admin.site._registry[Employee].get_changelist_instance(request)
    assert type(changelist) is CheapRowsChangeList
    row = Employee(pk=pk)
    assert changelist.url_for_result(row) == ChangeList.url_for_result(changelist, row)


def test_the_page_shows_a_checkbox_and_links_per_row(client, it_admin):
    people = EmployeeFactory.create_batch(3)
    client.force_login(it_admin)
    body = client.get(reverse("admin:accounts_employee_changelist")).content.decode()
    assert body.count('name="_selected_action"') == 3
    for person in people:
        assert f'value="{person.pk}" class="action-select"' in body
        change = reverse("admin:accounts_employee_change", args=[person.pk])
        assert body.count(f'href="{change}') == 2  # number and name both link (list_display_links)


def test_a_filter_past_the_count_cap_says_more_than_and_every_page_is_reachable(client, it_admin, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 3)
    monkeypatch.setattr(admin.site._registry[Employee], "list_per_page", 1)
    EmployeeFactory.create_batch(14, status=EmployeeStatus.TERMINATED)
    EmployeeFactory(status=EmployeeStatus.ACTIVE)
    client.force_login(it_admin)
    url = reverse("admin:accounts_employee_changelist")

    first = client.get(url, {"status__exact": "terminated"})
    body = first.content.decode()
    assert first.context["cl"].paginator.count_limit == 11  # (page 1 + 10 pages) x 1 row
    assert "more than 11 employees" in body and "Select all (more than 11) employees" in body
    assert "14 employees" not in body

    last = client.get(url, {"status__exact": "terminated", "p": "14"})  # past the first count's cap
    assert last.status_code == 200 and last.content.decode().count('name="_selected_action"') == 1
    assert last.context["cl"].paginator.count == 14 and not last.context["cl"].paginator.count_is_lower_bound
    assert "14 employees" in last.content.decode()

    few = client.get(url, {"status__exact": "active"})
    assert "1 employee" in few.content.decode() and "more than" not in few.content.decode()
