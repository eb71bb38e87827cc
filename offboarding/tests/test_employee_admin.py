"""The Employee admin page (registered by this app): join on add, mover preview and apply, terminate,
the checklists inline; and the parts assets contributes: the hardware inline, hardware blocking a deletion."""

import datetime

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from accounts.models import Employee, EmployeeStatus, EntitlementSource, EntitlementStatus, RoleApplication
from accounts.tests.factories import (
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    EntitlementFactory,
    RoleFactory,
    admin_search_people,
)
from assets.services import asset_check_out
from assets.tests.factories import HardwareAssetFactory
from offboarding.models import Assignee, ChecklistKind, ChecklistRun, ChecklistTemplate, TaskTemplate
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

ADD = reverse("admin:accounts_employee_add")
CHANGELIST = reverse("admin:accounts_employee_changelist")


def change_url(employee):
    return reverse("admin:accounts_employee_change", args=[employee.pk])


def delete_url(employee):
    return reverse("admin:accounts_employee_delete", args=[employee.pk])


def terminate_url(employee):
    return reverse("admin:accounts_employee_terminate", args=[employee.pk])


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def form_data(response, **overrides) -> dict:
    """The admin form as the browser would post it, with `overrides`."""
    form = response.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None:
            continue
        data[name] = value.isoformat() if isinstance(value, datetime.date) else value
    for inline in response.context["inline_admin_formsets"]:
        prefix = inline.formset.prefix
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    data.update({k: ("" if v is None else v) for k, v in overrides.items()})
    return data


@pytest.fixture
def roles():
    analyst, engineer = RoleFactory(name="Analyst", code="analyst"), RoleFactory(name="Engineer", code="engineer")
    bi, git = ApplicationFactory(name="BI Tool"), ApplicationFactory(name="Git Server")
    RoleApplication.objects.create(role=analyst, application=bi)
    RoleApplication.objects.create(role=engineer, application=git)
    return {"analyst": analyst, "engineer": engineer, "bi": bi, "git": git}


def test_adding_an_employee_starts_the_join_run(client, it_admin, roles, django_capture_on_commit_callbacks):
    joiner = ChecklistTemplate.objects.create(name="Joiner", kind=ChecklistKind.JOIN)
    TaskTemplate.objects.create(
        checklist=joiner, key="welcome", title="Hand over the welcome pack", assignee=Assignee.IT
    )
    client.force_login(it_admin)
    start = timezone.localdate() + datetime.timedelta(days=14)
    page = client.get(ADD)
    data = form_data(
        page,
        employee_number="N-1",
        first_name="Nia",
        last_name="New",
        work_email="nia@example.com",
        employment_type="full_time",
        status=EmployeeStatus.PRE_HIRE,
        start_date=start.isoformat(),
        role=roles["analyst"].pk,
        department=DepartmentFactory().pk,
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(ADD, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    nia = Employee.objects.get(employee_number="N-1")
    run = ChecklistRun.objects.get(employee=nia, kind=ChecklistKind.JOIN)
    assert run.event_date == start and run.started_by == it_admin
    assert any("Join checklist started" in t for t in texts(response))
    # Inserted by `employee_create`: history and the typed audit event name the IT user.
    assert nia.history.earliest().history_user == it_admin
    [created] = AuditEvent.objects.filter(action=AuditEvent.Action.EMPLOYEE_CREATED, target_id=str(nia.pk))
    assert (created.actor, created.detail) == (it_admin, {"via": "admin"})


def test_changing_the_role_shows_a_preview_then_applies_the_move(client, it_admin, roles):
    ana = EmployeeFactory(role=roles["analyst"])
    EntitlementFactory(employee=ana, application=roles["bi"], source=EntitlementSource.BIRTHRIGHT)
    EntitlementFactory(employee=ana, application=ApplicationFactory(name="VPN"), source=EntitlementSource.MANUAL)
    client.force_login(it_admin)
    data = form_data(client.get(change_url(ana)), role=roles["engineer"].pk, title="Engineer II")

    preview = client.post(change_url(ana), data)
    assert preview.status_code == 200
    assert "admin/offboarding/employee/mover_preview.html" in [t.name for t in preview.templates]
    p = preview.context["preview"]
    assert [line.application.name for line in p.add] == ["Git Server"]
    assert [line.application.name for line in p.revoke] == ["BI Tool"]
    assert [line.application.name for line in p.keep] == ["VPN"]
    html = preview.content.decode()
    assert "Git Server" in html and "BI Tool" in html and "by hand" in html and "Apply the move" in html
    ana.refresh_from_db()
    assert ana.role == roles["analyst"] and ana.title == "Engineer"  # nothing saved yet

    applied = client.post(change_url(ana), {**data, "_mover_confirm": "Apply the move"})
    assert applied.status_code == 302
    ana.refresh_from_db()
    assert ana.role == roles["engineer"] and ana.title == "Engineer II"
    run = ChecklistRun.objects.get(employee=ana, kind=ChecklistKind.MOVE)
    assert run.started_by == it_admin
    assert ana.entitlements.filter(application=roles["git"], status=EntitlementStatus.PENDING).exists()
    assert run.tasks.filter(action="revoke_entitlement").count() == 1
    assert ana.history.first().history_user == it_admin
    assert any("Move applied" in t for t in texts(applied))


def test_changing_other_fields_saves_without_a_preview(client, it_admin, roles):
    ana = EmployeeFactory(role=roles["analyst"])
    client.force_login(it_admin)
    response = client.post(change_url(ana), form_data(client.get(change_url(ana)), title="Lead Analyst"))
    assert response.status_code == 302
    ana.refresh_from_db()
    assert ana.title == "Lead Analyst"
    assert not ChecklistRun.objects.filter(employee=ana).exists()


def test_the_status_cannot_be_set_to_terminated_by_editing(client, it_admin):
    ana = EmployeeFactory()
    client.force_login(it_admin)
    response = client.post(change_url(ana), form_data(client.get(change_url(ana)), status=EmployeeStatus.TERMINATED))
    assert response.status_code == 200
    assert "Terminate" in str(response.context["adminform"].form.errors["status"])
    ana.refresh_from_db()
    assert ana.status == EmployeeStatus.ACTIVE


def test_terminate_button_form_refusal_and_success(client, it_admin, django_capture_on_commit_callbacks):
    ana = EmployeeFactory(start_date=datetime.date(2024, 1, 15))
    client.force_login(it_admin)
    page = client.get(change_url(ana))
    assert terminate_url(ana) in page.content.decode()

    form = client.get(terminate_url(ana))
    assert form.status_code == 200 and "last_day" in form.context["form"].fields

    refused = client.post(terminate_url(ana), {"apply": "1", "last_day": "2024-01-01", "when": "now", "reason": "x"})
    assert refused.status_code == 200
    assert "before the start date" in str(refused.context["form"].errors)
    assert not ChecklistRun.objects.filter(employee=ana).exists()

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            terminate_url(ana),
            {"apply": "1", "last_day": timezone.localdate().isoformat(), "when": "now", "reason": "Resigned"},
        )
    assert done.status_code == 302 and done.url == change_url(ana)
    assert any("Termination started" in t for t in texts(done))
    run = ChecklistRun.objects.get(employee=ana, kind=ChecklistKind.LEAVE)
    assert run.details["reason"] == "Resigned" and run.started_by == it_admin
    ana.refresh_from_db()
    assert ana.status == EmployeeStatus.TERMINATED

    page = client.get(change_url(ana))
    html = page.content.decode()
    assert terminate_url(ana) not in html
    assert "Checklists (join, move, leave)" in html and "tasks done" in html


def test_terminate_action_on_the_list(client, helpdesk):
    people = [EmployeeFactory(), EmployeeFactory()]
    client.force_login(helpdesk)
    selected = [str(p.pk) for p in people]
    first = client.post(CHANGELIST, {"action": "terminate_selected", "_selected_action": selected, "index": 0})
    assert first.status_code == 200 and sorted(first.context["object_ids"]) == sorted(p.pk for p in people)
    last_day = (timezone.localdate() + datetime.timedelta(days=10)).isoformat()
    response = client.post(
        CHANGELIST,
        {
            "action": "terminate_selected",
            "_selected_action": selected,
            "apply": "1",
            "last_day": last_day,
            "when": "end_of_last_day",
            "reason": "",
        },
    )
    assert response.status_code == 302
    assert ChecklistRun.objects.filter(employee__in=people, kind=ChecklistKind.LEAVE).count() == 2
    for person in people:
        person.refresh_from_db()
        assert str(person.end_date) == last_day and person.status == EmployeeStatus.ACTIVE


def test_auditor_cannot_terminate(client, auditor):
    ana = EmployeeFactory()
    client.force_login(auditor)
    assert client.get(terminate_url(ana)).status_code == 403
    assert client.post(terminate_url(ana), {"apply": "1", "last_day": "2030-01-01", "when": "now"}).status_code == 403
    assert terminate_url(ana) not in client.get(change_url(ana)).content.decode()
    assert not ChecklistRun.objects.filter(employee=ana).exists()


def test_start_join_action(client, it_admin):
    ana = EmployeeFactory(status=EmployeeStatus.PRE_HIRE, start_date=timezone.localdate() + datetime.timedelta(days=30))
    client.force_login(it_admin)
    response = client.post(CHANGELIST, {"action": "start_join", "_selected_action": [ana.pk], "index": 0})
    assert response.status_code == 302
    assert ChecklistRun.objects.filter(employee=ana, kind=ChecklistKind.JOIN).count() == 1


# --- What the page shows and deleting, with the hardware parts assets contributes ---------------------


@pytest.fixture
def people():
    return admin_search_people()


def test_employee_page_shows_access_and_hardware_read_only(client, helpdesk, it_admin, people):
    ada, _, _ = people
    entitlement = EntitlementFactory(employee=ada, application=ApplicationFactory(name="GitHub"))
    asset = HardwareAssetFactory(asset_tag="LAP-0042")
    asset_check_out(asset=asset, employee=ada, acting_user=it_admin)
    client.force_login(helpdesk)
    response = client.get(change_url(ada))
    assert response.status_code == 200
    html = response.content.decode()
    assert "GitHub" in html
    assert "LAP-0042" in html
    assert reverse("admin:accounts_entitlement_change", args=[entitlement.pk]) in html
    assert reverse("admin:assets_hardwareasset_change", args=[asset.pk]) in html
    inlines = {fs.opts.model.__name__ for fs in response.context["inline_admin_formsets"]}
    assert inlines >= {"Entitlement", "HardwareAsset"}


@pytest.mark.parametrize("model_name", ["Entitlement", "HardwareAsset", "ChecklistRun"])
def test_employee_page_inlines_are_read_only(client, helpdesk, people, model_name):
    ada, _, _ = people
    client.force_login(helpdesk)
    response = client.get(change_url(ada))
    (formset,) = [fs for fs in response.context["inline_admin_formsets"] if fs.opts.model.__name__ == model_name]
    assert not formset.has_add_permission
    assert not formset.has_change_permission
    assert not formset.has_delete_permission


def test_delete_refused_with_reason_when_holding_hardware_and_access(client, it_admin, people):
    ada, _, _ = people
    EntitlementFactory(employee=ada)
    asset_check_out(asset=HardwareAssetFactory(), employee=ada, acting_user=it_admin)
    client.force_login(it_admin)

    for response in (client.get(delete_url(ada)), client.post(delete_url(ada), {"post": "yes"})):
        assert response.status_code == 302
        assert response.url == change_url(ada)
        message = texts(response)[-1]
        assert "cannot be deleted" in message
        assert "1 entitlement" in message and "1 hardware asset" in message
        assert "terminated" in message
    assert Employee.objects.filter(pk=ada.pk).exists()


def test_bulk_delete_refused_per_employee_with_reasons(client, it_admin, people):
    ada, alan, grace = people
    EntitlementFactory(employee=ada)
    asset_check_out(asset=HardwareAssetFactory(), employee=alan, acting_user=it_admin)
    client.force_login(it_admin)
    response = client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [ada.pk, alan.pk, grace.pk], "index": 0},
        follow=True,
    )
    messages = texts(response)
    assert any(str(ada) in m and "1 entitlement" in m for m in messages)
    assert any(str(alan) in m and "1 hardware asset" in m for m in messages)
    assert not any(str(grace) in m for m in messages)
    assert any("Nothing was deleted" in m for m in messages)
    assert Employee.objects.count() == 3


# --- A scoped helpdesk (limited to `scope_department`) on the employee page ---------------------------------


def _errors(response) -> str:
    form = response.context["adminform"].form
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


def test_scoped_helpdesk_adds_people_inside_its_scope_only(client, scoped_helpdesk, scope_department):
    client.force_login(scoped_helpdesk)
    page = client.get(ADD)
    base = {
        "first_name": "Nia",
        "last_name": "New",
        "employment_type": "full_time",
        "status": EmployeeStatus.PRE_HIRE,
        "start_date": (timezone.localdate() + datetime.timedelta(days=7)).isoformat(),
    }
    outside = form_data(page, employee_number="N-1", work_email="n1@example.com", department=DepartmentFactory().pk)
    response = client.post(ADD, {**outside, **base})
    assert response.status_code == 200
    assert "would be outside your scope (departments Scoped desk)" in _errors(response)
    assert not Employee.objects.filter(employee_number="N-1").exists()
    inside = form_data(page, employee_number="N-2", work_email="n2@example.com", department=scope_department.pk)
    assert client.post(ADD, {**inside, **base}).status_code == 302
    assert Employee.objects.get(employee_number="N-2").history.earliest().history_user == scoped_helpdesk


def test_scoped_helpdesk_cannot_pick_a_manager_outside_its_scope(client, scoped_helpdesk, scope_department):
    ana = EmployeeFactory(department=scope_department)
    inside, outside = EmployeeFactory(department=scope_department), EmployeeFactory()
    client.force_login(scoped_helpdesk)
    page = client.get(change_url(ana))
    response = client.post(change_url(ana), form_data(page, manager=outside.pk))
    assert response.status_code == 200
    assert "Select a valid choice" in _errors(response)
    ana.refresh_from_db()
    assert ana.manager is None
    # The picker itself offers only people inside the scope.
    found = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "accounts", "model_name": "employee", "field_name": "manager", "term": ""},
    ).json()["results"]
    assert {int(row["id"]) for row in found} == {ana.pk, inside.pk}


def test_scoped_helpdesk_cannot_move_someone_out_of_its_scope(client, scoped_helpdesk, scope_department):
    ana = EmployeeFactory(department=scope_department)
    elsewhere = DepartmentFactory()
    client.force_login(scoped_helpdesk)
    response = client.post(change_url(ana), form_data(client.get(change_url(ana)), department=elsewhere.pk))
    assert response.status_code == 200
    assert "admin/offboarding/employee/mover_preview.html" not in [t.name for t in response.templates]
    assert "would be outside your scope" in _errors(response)
    ana.refresh_from_db()
    assert ana.department == scope_department
    assert not ChecklistRun.objects.filter(employee=ana, kind=ChecklistKind.MOVE).exists()


def test_scoped_helpdesk_gets_404_on_the_pages_of_someone_outside_its_scope(client, scoped_helpdesk):
    bob = EmployeeFactory(title="Engineer")
    client.force_login(scoped_helpdesk)
    assert client.get(change_url(bob)).status_code == 404
    assert client.get(terminate_url(bob)).status_code == 404
    response = client.post(terminate_url(bob), {"apply": "1", "last_day": "2030-01-31", "when": "now"})
    assert response.status_code == 404
    assert client.post(change_url(bob), {"title": "Boss", "role": RoleFactory().pk}).status_code == 404
    bob.refresh_from_db()
    assert bob.status == EmployeeStatus.ACTIVE and bob.title == "Engineer"
    assert not ChecklistRun.objects.filter(employee=bob).exists()
    # The same answer as an id nobody has.
    assert client.get(reverse("admin:accounts_employee_change", args=[987654321])).status_code == 404
