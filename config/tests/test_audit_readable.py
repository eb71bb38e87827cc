"""The readable audit log: each event a sentence, its page the before/after, filters and export.

Events are written by the real services (grant, revoke, check-out, move, status change), then read
back through the admin as an auditor would.
"""

import csv
import datetime
import io
import string

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from accounts.models import EmployeeStatus
from accounts.services.employees import employee_set_status
from accounts.services.entitlements import entitlement_grant, entitlement_revoke
from accounts.tests.factories import ApplicationFactory, DepartmentFactory, EmployeeFactory, RoleFactory
from assets.services import asset_check_out
from assets.tests.factories import HardwareAssetFactory
from offboarding.flows.mover import mover_apply
from portal.auditsentences import KINDS, TEMPLATES, describe, event_changes, sentence_text
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

LIST = "admin:portal_auditevent_changelist"


@pytest.fixture
def maria(it_admin):
    """IT admin Maria Keller: a login with an employee record, so events name her."""
    EmployeeFactory(first_name="Maria", last_name="Keller", user=it_admin)
    return it_admin


@pytest.fixture
def jan():
    return EmployeeFactory(first_name="Jan", last_name="Vogel", role=RoleFactory())


def _text(event):
    return sentence_text(describe([event])[event.pk])


def _last(action):
    return AuditEvent.objects.filter(action=action).order_by("-seq").first()


def test_every_action_has_a_sentence_whose_kinds_are_known():
    assert sorted(set(AuditEvent.Action.values) - set(TEMPLATES)) == []
    for action, template in TEMPLATES.items():
        specs = {
            spec for _, name, spec, _ in string.Formatter().parse(template.replace("[", "").replace("]", "")) if name
        }
        assert specs - set(KINDS) - {""} == set(), f"{action}: unknown kind in {template!r}"
        assert template.count("[") == template.count("]"), action


def test_grant_and_revoke_read_as_sentences_naming_people_by_name(maria, jan):
    github = ApplicationFactory(name="GitHub", access_levels=["read", "write"])
    entitlement = entitlement_grant(employee=jan, application=github, level="write", acting_user=maria)
    entitlement_revoke(entitlement=entitlement, acting_user=maria, reason="no longer needed")

    assert _text(_last("grant")) == "Maria Keller granted GitHub (write) to Jan Vogel — source: manual"
    assert _text(_last("revoke")) == "Maria Keller revoked GitHub from Jan Vogel — no longer needed"


def test_the_system_and_a_user_without_an_employee_record_are_named_too(it_admin, jan):
    asset = HardwareAssetFactory(location=jan.location)
    asset_check_out(asset=asset, employee=jan, acting_user=it_admin)
    assert _text(_last("check_out")) == f"it-admin checked out {asset} to Jan Vogel"
    employee_set_status(employee=jan, status=EmployeeStatus.LEAVE_OF_ABSENCE, acting_user=None, reason="parental leave")
    assert (
        _text(_last("status_changed"))
        == f"System changed the status of {jan} from active to leave of absence — parental leave"
    )


def test_an_optional_part_with_no_value_is_left_out(maria, jan):
    github = ApplicationFactory(name="GitHub")
    entitlement = entitlement_grant(employee=jan, application=github, level="user", acting_user=maria)
    entitlement_revoke(entitlement=entitlement, acting_user=maria)  # no reason
    assert _text(_last("revoke")) == "Maria Keller revoked GitHub from Jan Vogel"


def test_a_person_gone_from_the_database_is_named_as_gone(maria, jan):
    github = ApplicationFactory(name="GitHub")
    entitlement_grant(employee=jan, application=github, level="user", acting_user=maria)
    event = _last("grant")
    event.personal.detail = {**event.detail, "employee": 987654}
    assert "employee #987654 (gone)" in _text(event)


def test_the_list_shows_sentences_in_a_constant_number_of_queries(client, auditor, maria):
    github = ApplicationFactory(name="GitHub")

    def add(n):
        for _ in range(n):
            person = EmployeeFactory(role=RoleFactory())
            entitlement = entitlement_grant(employee=person, application=github, level="user", acting_user=maria)
            entitlement_revoke(entitlement=entitlement, acting_user=maria, reason="left the team")

    client.force_login(auditor)
    url = reverse(LIST)
    client.get(url)
    counts = []
    for n in (2, 12):
        add(n)
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        assert response.status_code == 200
        counts.append(len(ctx.captured_queries))
    body = strip_tags(response.content.decode())
    assert body.count("Maria Keller revoked") == 14
    assert "— left the team" in body
    assert counts[0] == counts[1], counts


def test_the_event_page_shows_the_move_as_before_and_after(client, auditor, maria, jan):
    old_department = jan.department
    new_department = DepartmentFactory(name="Platform")
    mover_apply(employee=jan, changes={"department": new_department}, acting_user=maria)
    event = _last("employee_moved")
    where, changes = event_changes(event)
    assert [(c.field, c.before, c.after) for c in changes] == [("department", str(old_department), "Platform")]

    client.force_login(auditor)
    body = client.get(reverse("admin:portal_auditevent_change", args=[event.pk])).content.decode()
    assert "Maria Keller moved" in strip_tags(body)
    assert "<td class='audit-before'>" + str(old_department) in body
    assert "<td class='audit-after'>Platform</td>" in body


def test_the_event_page_diffs_the_targets_history_when_the_detail_has_no_changes(maria, jan):
    github = ApplicationFactory(name="GitHub")
    entitlement = entitlement_grant(employee=jan, application=github, level="user", acting_user=maria)
    entitlement_revoke(entitlement=entitlement, acting_user=maria, reason="done")
    where, changes = event_changes(_last("revoke"))
    assert where.startswith("history of entitlement")
    by_field = {c.field: (c.before, c.after) for c in changes}
    assert by_field["status"] == ("Active", "Revoked")
    assert by_field["revoked at"][0] == "—"
    assert "level" not in by_field  # unchanged fields are not listed


def test_a_level_change_reads_from_its_detail(maria, jan):
    from accounts.services.provisioning import entitlement_confirm_level_changed

    github = ApplicationFactory(name="GitHub", access_levels=["read", "write"])
    entitlement = entitlement_grant(employee=jan, application=github, level="read", acting_user=maria)
    entitlement_confirm_level_changed(entitlement=entitlement, level="write", acting_user=maria)
    event = _last("level_changed")
    assert [(c.field, c.before, c.after) for c in event_changes(event)[1]] == [("level", "read", "write")]


def test_filters_by_actor_event_type_target_person_and_dates(client, auditor, maria, jan):
    github = ApplicationFactory(name="GitHub")
    other = EmployeeFactory(first_name="Olga", last_name="Other", role=RoleFactory())
    grant = entitlement_grant(employee=jan, application=github, level="user", acting_user=maria)
    entitlement_grant(employee=other, application=github, level="user", acting_user=None)
    client.force_login(auditor)

    def sentences(**params):
        response = client.get(reverse(LIST), params)
        assert response.status_code == 200
        return [sentence_text(e._sentence) for e in response.context["cl"].result_list]

    assert sentences(actor=maria.pk, action="grant") == [
        "Maria Keller granted GitHub (user) to Jan Vogel — source: manual"
    ]
    assert sentences(actor="system", action="grant") == ["System granted GitHub (user) to Olga Other — source: manual"]
    assert sentences(action="grant", target=f"accounts.Entitlement:{grant.pk}") == [
        "Maria Keller granted GitHub (user) to Jan Vogel — source: manual"
    ]
    assert all("Jan Vogel" in s for s in sentences(person=jan.pk))
    assert sentences(person=jan.pk)
    today = timezone.localdate()
    assert len(sentences(action="grant", created_at__since=today.isoformat(), created_at__until=today.isoformat())) == 2
    tomorrow = (today + datetime.timedelta(days=1)).isoformat()
    assert sentences(action="grant", created_at__since=tomorrow) == []


@pytest.mark.parametrize(
    "params",
    [
        {"actor": "nobody"},
        {"person": "x"},
        {"target": "nocolon"},
        {"created_at__since": "yesterday"},
        {"created_at__since": "2026-02-02", "created_at__until": "2026-02-01"},
    ],
)
def test_a_bad_filter_value_is_the_admins_incorrect_lookup_answer_not_an_error(client, auditor, params):
    client.force_login(auditor)
    response = client.get(reverse(LIST), params)
    assert response.status_code == 302
    assert response.url.endswith("?e=1")


def test_the_export_has_the_sentence_column(client, auditor, maria, jan):
    github = ApplicationFactory(name="GitHub")
    entitlement_grant(employee=jan, application=github, level="user", acting_user=maria)
    client.force_login(auditor)
    response = client.post(reverse("admin:portal_auditevent_export"), {"format": "0", "resource": "0", **_all_fields()})
    assert response.status_code == 200, response.content[:500]
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert "Maria Keller granted GitHub (user) to Jan Vogel — source: manual" in [row["event"] for row in rows]


def _all_fields():
    # The export form names each field after the resource class: `<resource>_<field>`.
    from portal.resources import AuditEventResource

    return {f"{AuditEventResource.__name__.lower()}_{name}": "on" for name in AuditEventResource.Meta.fields}


def test_values_are_escaped_in_the_sentence(client, auditor, maria):
    evil = EmployeeFactory(first_name="<script>x</script>", last_name="Evil", role=RoleFactory())
    entitlement_grant(employee=evil, application=ApplicationFactory(name="GitHub"), level="user", acting_user=maria)
    client.force_login(auditor)
    body = client.get(reverse(LIST)).content.decode()
    assert "<script>x</script>" not in body
    assert "&lt;script&gt;x&lt;/script&gt; Evil" in body


def test_an_employee_page_links_to_their_audit_trail_for_those_who_may_read_it(client, auditor, maria, jan):
    github = ApplicationFactory(name="GitHub")
    entitlement = entitlement_grant(employee=jan, application=github, level="user", acting_user=maria)
    client.force_login(auditor)
    body = client.get(reverse("admin:accounts_employee_change", args=[jan.pk])).content.decode()
    trail = f"{reverse(LIST)}?person={jan.pk}"
    assert trail in body
    listed = strip_tags(client.get(trail).content.decode())
    assert "Maria Keller granted GitHub (user) to Jan Vogel" in listed
    body = client.get(reverse("admin:accounts_entitlement_change", args=[entitlement.pk])).content.decode()
    assert f"{reverse(LIST)}?target=accounts.Entitlement%3A{entitlement.pk}" in body


def test_no_audit_trail_link_without_the_audit_view_permission(client, jan):
    from django.contrib.auth.models import Permission, User

    clerk = User.objects.create_user(username="clerk", password="x", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_employee"))
    client.force_login(clerk)
    body = client.get(reverse("admin:accounts_employee_change", args=[jan.pk])).content.decode()
    assert "Audit trail" not in body
    assert client.get(reverse(LIST)).status_code == 403


def test_an_admin_scope_reads_as_a_sentence(maria, helpdesk):
    from accounts.models import AdminScope
    from accounts.services.scopes import admin_scope_save

    finance = DepartmentFactory(name="Finance")
    scope = AdminScope(user=helpdesk)
    admin_scope_save(scope=scope, departments=[finance], locations=[], acting_user=maria)
    assert (
        _text(_last("admin_scope_saved")) == "Maria Keller limited the helpdesk login helpdesk to departments: Finance"
    )
