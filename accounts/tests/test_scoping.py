"""Scoped administration: the scope itself (saved through its service, refused when meaningless), and the
reports that list people (separation-of-duties conflicts, access on a date, review evidence) for a scoped
helpdesk. Every admin page, action and export is covered for every model in `config/tests/test_groups.py`."""

import csv
import datetime
import io

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.models import AdminScope, SoDRule
from accounts.scoping import restrict
from accounts.services import sod
from accounts.services.scopes import admin_scope_remove, admin_scope_save
from accounts.tests.factories import (
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    EntitlementFactory,
    LocationFactory,
)
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

ADD = reverse("admin:accounts_adminscope_add")


# --- The scope -----------------------------------------------------------------------------------


def test_it_admin_scopes_a_helpdesk_login_with_history_and_audit(client, it_admin, helpdesk):
    berlin, finance = LocationFactory(name="Berlin"), DepartmentFactory(name="Finance")
    client.force_login(it_admin)
    response = client.post(ADD, {"user": helpdesk.pk, "departments": [finance.pk], "locations": [berlin.pk]})
    assert response.status_code == 302
    scope = AdminScope.objects.get(user=helpdesk)
    assert list(scope.departments.all()) == [finance] and list(scope.locations.all()) == [berlin]
    # One history row for the save and one per list set (simple-history's m2m tracking), each naming IT.
    assert {version.history_user for version in scope.history.all()} == {it_admin}
    latest = scope.history.first()
    assert [row.department for row in latest.departments.all()] == [finance]
    event = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_SCOPE_SAVED)
    assert (event.actor, event.detail["departments"], event.detail["locations"]) == (it_admin, ["Finance"], ["Berlin"])
    # Deleting the scope lifts the restriction, audited too.
    assert client.post(reverse("admin:accounts_adminscope_delete", args=[scope.pk]), {"post": "yes"}).status_code == 302
    assert not AdminScope.objects.exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_SCOPE_REMOVED, actor=it_admin).count() == 1


@pytest.mark.parametrize(
    "who, departments, message",
    [
        ("helpdesk", False, "Choose at least one department or location"),
        ("it_admin", True, "they are never scoped"),
        ("auditor", True, "they are never scoped"),
    ],
)
def test_a_meaningless_or_misplaced_scope_is_refused_on_the_form(
    client, it_admin, helpdesk, auditor, who, departments, message
):
    user = {"helpdesk": helpdesk, "it_admin": it_admin, "auditor": auditor}[who]
    client.force_login(it_admin)
    data = {"user": user.pk, "departments": [DepartmentFactory().pk] if departments else [], "locations": []}
    response = client.post(ADD, data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AdminScope.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_SCOPE_SAVED).exists()


def test_the_service_refuses_an_empty_scope_and_restrict_reads_one_as_nothing(helpdesk):
    with pytest.raises(ValidationError, match="at least one department or location"):
        admin_scope_save(scope=AdminScope(user=helpdesk), departments=[], locations=[], acting_user=None)
    # A row made some other way (a migration, the shell) with nothing in it: the login sees nobody.
    AdminScope.objects.create(user=helpdesk)
    EmployeeFactory()
    assert not restrict(EmployeeFactory._meta.model.objects.all(), helpdesk).exists()


def test_helpdesk_cannot_change_scopes_and_a_scoped_login_sees_only_its_own(client, scoped_helpdesk, helpdesk):
    other = admin_scope_save(
        scope=AdminScope(user=helpdesk), departments=[DepartmentFactory()], locations=[], acting_user=None
    )
    client.force_login(scoped_helpdesk)
    assert client.post(ADD, {"user": scoped_helpdesk.pk, "locations": [LocationFactory().pk]}).status_code == 403
    listed = client.get(reverse("admin:accounts_adminscope_changelist")).context["cl"].result_list
    assert [scope.user for scope in listed] == [scoped_helpdesk]
    assert client.get(reverse("admin:accounts_adminscope_change", args=[other.pk])).status_code == 404
    admin_scope_remove(scope=other, acting_user=None)


# --- Reports that list people ------------------------------------------------------------------------


@pytest.fixture
def conflicts(scope_department):
    """Inside and outside the scope, one person each holding both sides of a payments rule."""
    submit = ApplicationFactory(name="Bank portal", access_levels=["submitter", "viewer"])
    approve = ApplicationFactory(name="ERP payments", access_levels=["approver", "viewer"])
    sod.sod_rule_save(
        rule=SoDRule(
            name="Payments",
            reason="Whoever submits a payment must not approve it.",
            first_application=submit,
            first_level="submitter",
            second_application=approve,
            second_level="approver",
            control_owner=EmployeeFactory(),
        ),
        acting_user=None,
    )
    inside = EmployeeFactory(first_name="Ina", last_name="Inside", department=scope_department)
    outside = EmployeeFactory(first_name="Otto", last_name="Outside")
    for person in (inside, outside):
        EntitlementFactory(employee=person, application=submit, level="submitter")
        EntitlementFactory(employee=person, application=approve, level="approver")
    return inside, outside


def test_scoped_helpdesk_sees_the_conflicts_of_people_inside_its_scope_only(client, scoped_helpdesk, conflicts):
    client.force_login(scoped_helpdesk)
    page = client.get(reverse("admin:accounts_sodrule_violations"))
    assert [row["person"].full_name for row in page.context["rows"]] == ["Ina Inside"]
    assert "Otto" not in page.content.decode()
    exported = client.get(reverse("admin:accounts_sodrule_violations_export", args=["csv"])).content.decode("utf-8-sig")
    people = [row[1] for row in csv.reader(io.StringIO(exported))][1:]
    assert people == ["Ina Inside"]


def test_scoped_helpdesk_asks_access_on_a_date_inside_its_scope_only(client, scoped_helpdesk, conflicts):
    inside, outside = conflicts
    client.force_login(scoped_helpdesk)
    url = reverse("admin:accounts_entitlement_as_of")
    today = timezone.localdate().isoformat()
    app = inside.entitlements.first().application
    page = client.get(url, {"day": today, "application": app.pk})
    assert {v.employee_id for v in page.context["page"].object_list} == {inside.pk}
    # Someone outside is answered like nobody.
    refused = client.get(url, {"day": today, "person": outside.employee_number})
    assert refused.status_code == 400 and "No employee has the number or work email" in refused.content.decode()
    download = client.get(url, {"day": today, "application": app.pk, "format": "csv"}).content.decode("utf-8-sig")
    assert inside.employee_number in download and outside.employee_number not in download


def test_scoped_helpdesk_reads_the_review_evidence_of_people_inside_its_scope_only(
    client, it_admin, scoped_helpdesk, conflicts
):
    from accounts.models import AccessReview
    from accounts.services import reviews

    inside, outside = conflicts
    reviewer = EmployeeFactory()
    reviewer.user = it_admin
    reviewer.save()
    for person in conflicts:
        person.manager = reviewer
        person.save()
    today = timezone.localdate()
    campaign = reviews.review_campaign_save(
        campaign=AccessReview(name="Q1", starts_on=today, due_on=today + datetime.timedelta(days=10)),
        acting_user=it_admin,
    )
    campaign.applications.set([inside.entitlements.first().application])
    reviews.review_campaign_launch(campaign=campaign, acting_user=it_admin)
    client.force_login(scoped_helpdesk)
    page = client.get(reverse("admin:accounts_accessreview_evidence", args=[campaign.pk]))
    assert {item.employee_id for item in page.context["items"]} == {inside.pk}
    export = client.get(reverse("admin:accounts_accessreview_evidence_export", args=[campaign.pk, "csv"]))
    text = export.content.decode("utf-8-sig")
    assert inside.full_name in text and outside.full_name not in text
