"""Who sees personal contact data: IT admins (`accounts.view_personal_data`) on the change page, its history,
the export and the search; the helpdesk and auditors do not, anywhere in the admin."""

import pytest
from django.contrib import admin
from django.urls import reverse

from accounts.models import Employee
from accounts.resources import EmployeePersonalResource, EmployeeResource
from accounts.tests.factories import EmployeeFactory
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent


def _change(employee, acting_user, **values):
    """An admin-style change of the row, with its history row and an "employee changed" event."""
    for name, value in values.items():
        setattr(employee, name, value)
    set_history_user(employee, acting_user)
    employee.save()
    audit_record(action=AuditEvent.Action.EMPLOYEE_CHANGED, target=employee, acting_user=acting_user, detail={})


EMAIL = "quentin.private@home.example"
PHONE = "+44 20 7946 0999"
ADDRESS = "3 Orchard Row, Leeds"
SECRETS = (EMAIL, PHONE, ADDRESS, "Orchard Row", "7946")


@pytest.fixture
def quentin(db):
    return EmployeeFactory(personal_email=EMAIL, personal_phone=PHONE, home_address=ADDRESS)


def _export(client, user):
    client.force_login(user)
    resource_class = admin.site.get_model_admin(Employee).get_export_resource_classes(_request(user))[0]
    data = {"format": "0", "resource": "0"}
    data.update({f"{resource_class.__name__.lower()}_{name}": "on" for name in resource_class.Meta.fields})
    response = client.post(reverse("admin:accounts_employee_export"), data)
    assert response.status_code == 200
    return resource_class, response.content.decode()


def _request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = user
    return request


def test_only_it_admins_hold_the_permission(it_admin, helpdesk, auditor):
    assert it_admin.has_perm("accounts.view_personal_data")
    assert not helpdesk.has_perm("accounts.view_personal_data")
    assert not auditor.has_perm("accounts.view_personal_data")
    assert helpdesk.has_perm("accounts.change_employee") and auditor.has_perm("accounts.view_employee")


def test_the_export_has_personal_data_only_for_it_admins(client, quentin, it_admin, helpdesk, auditor):
    used, body = _export(client, it_admin)
    assert used is EmployeePersonalResource
    assert body.splitlines()[0].endswith("personal_email,personal_phone,home_address")
    assert EMAIL in body and ADDRESS in body
    assert "'+44 20 7946 0999" in body  # formula-safe, like every cell starting with +
    for user in (helpdesk, auditor):
        used, body = _export(client, user)
        assert used is EmployeeResource
        assert quentin.employee_number in body
        for secret in SECRETS:
            assert secret not in body
        assert "personal" not in body.splitlines()[0] and "home_address" not in body


def test_the_change_page_and_its_history_show_them_only_to_it_admins(client, quentin, it_admin, helpdesk, auditor):
    _change(quentin, it_admin, home_address="4 Orchard Row, Leeds")
    history = quentin.history.order_by("history_id").first()
    pages = [
        reverse("admin:accounts_employee_change", args=[quentin.pk]),
        reverse("admin:accounts_employee_history", args=[quentin.pk]),
        reverse("admin:accounts_employee_simple_history", args=[quentin.pk, history.history_id]),
    ]
    client.force_login(it_admin)
    for page in pages:
        text = client.get(page).content.decode()
        assert "Orchard Row" in text, page
    assert EMAIL in client.get(pages[0]).content.decode()
    for user in (helpdesk, auditor):
        client.force_login(user)
        for page in pages:
            response = client.get(page)
            assert response.status_code == 200, (user, page)
            text = response.content.decode()
            for secret in SECRETS:
                assert secret not in text, (user.username, page, secret)
            assert 'name="personal_email"' not in text


def test_a_helpdesk_save_keeps_the_personal_data_it_cannot_see(client, quentin, helpdesk):
    client.force_login(helpdesk)
    url = reverse("admin:accounts_employee_change", args=[quentin.pk])
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields}
    data.update(title="Senior Engineer")
    for prefix in [fs.formset.prefix for fs in client.get(url).context["inline_admin_formsets"]]:
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = client.post(url, {k: v for k, v in data.items() if v is not None})
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    fresh = Employee.objects.get(pk=quentin.pk)
    assert fresh.title == "Senior Engineer"
    assert (fresh.personal_email, fresh.personal_phone, fresh.home_address) == (EMAIL, PHONE, ADDRESS)


def test_admin_search_finds_a_personal_email_or_phone_exactly_for_it_admins_only(client, quentin, it_admin, helpdesk):
    EmployeeFactory(personal_email="someone.else@home.example")
    changelist = reverse("admin:accounts_employee_changelist")
    client.force_login(it_admin)
    for term in ("Quentin.Private@home.example", "+44 20 7946 0999", "442079460999"):
        found = list(client.get(changelist, {"q": term}).context["cl"].result_list)
        assert found == [quentin], term
    # Only the whole value: a part of it finds nobody (an encrypted column cannot be searched in part).
    assert list(client.get(changelist, {"q": "quentin.private@home"}).context["cl"].result_list) == []
    client.force_login(helpdesk)
    assert list(client.get(changelist, {"q": EMAIL}).context["cl"].result_list) == []


def test_the_audit_event_page_never_shows_them(client, quentin, it_admin, auditor):
    _change(quentin, it_admin, personal_phone="+44 20 7946 0111")
    event = AuditEvent.objects.filter(target_id=str(quentin.pk)).order_by("-seq").first()
    for user in (it_admin, auditor):
        client.force_login(user)
        text = client.get(reverse("admin:portal_auditevent_change", args=[event.pk])).content.decode()
        assert "7946" not in text
