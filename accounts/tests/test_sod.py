"""Separation of duties: rules, the one conflict computation and its query count, the access request's
control-owner step or refusal, the request page, access review pages, time-bound exceptions (bad input
refused, history and audit), and the violations report in the admin with its CSV and XLSX exports.

The lifecycle side (the engine's grant, the mover preview) is `offboarding/tests/test_sod.py`.
Uses the `cast` fixture (root conftest): Erin (employee) reports to Morgan (manager); Orla
(other_owner) owns the payments control.
"""

import csv
import datetime
import io

import openpyxl
import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import (
    AccessRequest,
    AccessReview,
    ApprovalStepKind,
    ApprovalStepStatus,
    SoDEnforcement,
    SoDException,
    SoDRule,
)
from accounts.services import reviews, sod
from accounts.services.approval_steps import approval_step_decide
from accounts.tests.factories import ApplicationFactory, EmployeeFactory, EntitlementFactory, RoleFactory
from accounts.tests.helpers import ask
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

TODAY = datetime.date.today


@pytest.fixture
def pay(cast):
    """Two payment applications and the rule that one person must not submit and approve payments."""
    submit = ApplicationFactory(name="Bank portal", access_levels=["submitter", "viewer"])
    approve = ApplicationFactory(name="ERP payments", access_levels=["approver", "viewer"])
    rule = sod.sod_rule_save(
        rule=SoDRule(
            name="Payments: submit vs approve",
            reason="Whoever submits a payment must not approve it.",
            first_application=submit,
            first_level="submitter",
            second_application=approve,
            second_level="approver",
            enforcement=SoDEnforcement.APPROVAL,
            control_owner=cast.other_owner,
        ),
        acting_user=None,
    )
    return type("Pay", (), {"submit": submit, "approve": approve, "rule": rule})


def hold(person, application, level):
    return EntitlementFactory(employee=person, application=application, level=level)


# --- Rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sides, message",
    [
        ({"second_level": "submitter", "second_application": "submit"}, "Both sides name the same thing"),
        ({"second_level": "viewer", "second_application": "submit"}, "Both sides name the same application"),
        ({"second_level": "nope"}, "has no level 'nope'"),
        ({"second_application": None}, "either an application or a role"),
    ],
)
def test_a_bad_rule_is_refused_with_a_plain_message_and_nothing_is_written(cast, pay, sides, message):
    values = {
        "first_application": pay.submit,
        "first_level": "submitter",
        "second_application": pay.approve,
        "second_level": "approver",
    }
    for key, value in sides.items():
        values[key] = getattr(pay, value) if value in ("submit", "approve") else value
    before = (SoDRule.objects.count(), AuditEvent.objects.count())
    with pytest.raises(ValidationError) as exc:
        sod.sod_rule_save(
            rule=SoDRule(name="Bad", reason="Because.", control_owner=cast.other_owner, **values), acting_user=None
        )
    assert message in " ".join(exc.value.messages)
    assert (SoDRule.objects.count(), AuditEvent.objects.count()) == before


def test_two_roles_and_the_same_role_twice_are_refused(cast):
    one, two = RoleFactory(), RoleFactory()
    for second, message in ((two, "Both sides are roles"), (one, "Both sides name the same thing")):
        with pytest.raises(ValidationError, match=message):
            sod.sod_rule_save(
                rule=SoDRule(
                    name="Roles", reason="x", first_role=one, second_role=second, control_owner=cast.other_owner
                ),
                acting_user=None,
            )
    assert not SoDRule.objects.exists()


def test_a_rule_is_saved_with_history_and_an_audit_event(pay):
    assert pay.rule.history.count() == 1
    event = AuditEvent.objects.get(action=AuditEvent.Action.SOD_RULE_SAVED)
    assert event.detail["first"] == "Bank portal (submitter)" and event.detail["second"] == "ERP payments (approver)"


# --- The conflict computation ------------------------------------------------------------------


def test_conflicts_are_found_for_the_level_named_and_any_level(cast, pay):
    hold(cast.employee, pay.submit, "submitter")
    hold(cast.employee, pay.approve, "viewer")
    assert sod.sod_violations() == []
    any_level = sod.sod_rule_save(
        rule=SoDRule(
            name="Bank and ERP at all",
            reason="Keep them apart.",
            first_application=pay.submit,
            second_application=pay.approve,
            control_owner=cast.other_owner,
        ),
        acting_user=None,
    )
    assert [(c.rule, c.employee_id) for c in sod.sod_violations()] == [(any_level, cast.employee.pk)]


def test_a_role_side_matches_the_persons_role(cast, pay):
    clerk = RoleFactory(name="Payments clerk")
    cast.employee.role = clerk
    cast.employee.save()
    rule = sod.sod_rule_save(
        rule=SoDRule(
            name="Clerks do not approve",
            reason="A clerk prepares payments.",
            first_role=clerk,
            second_application=pay.approve,
            second_level="approver",
            control_owner=cast.other_owner,
        ),
        acting_user=None,
    )
    grant = sod.sod_conflicts_for_grant(employee=cast.employee, application_id=pay.approve.pk, level="approver")
    assert [c.rule for c in grant] == [rule] and grant[0].new
    hold(cast.employee, pay.approve, "approver")
    assert [c.rule for c in sod.sod_violations()] == [rule]


def _people_holding_both(pay, n):
    for _ in range(n):
        person = EmployeeFactory()
        hold(person, pay.submit, "submitter")
        hold(person, pay.approve, "approver")


def test_the_computation_costs_at_most_four_queries_whatever_the_number_of_people(pay):
    """The rules, the people's roles (none needed here: no rule names a role), the holdings, the exceptions."""
    _people_holding_both(pay, 1)
    with CaptureQueriesContext(connection) as small:
        assert len(sod.sod_violations()) == 1
    _people_holding_both(pay, 24)
    with CaptureQueriesContext(connection) as large:
        found = sod.sod_violations()
    assert len(found) == 25
    assert len(large) == len(small) <= 4
    scenarios = {
        c.employee_id: sod.SoDScenario(employee_id=c.employee_id, remove=frozenset([pay.submit.pk])) for c in found
    }
    with CaptureQueriesContext(connection) as many:
        after = sod.sod_conflicts(scenarios=scenarios)
    assert len(many) == 4 and len(after) == 25 and all(v == [] for v in after.values())


def test_no_active_rule_costs_one_query(pay):
    pay.rule.active = False
    sod.sod_rule_save(rule=pay.rule, acting_user=None)
    with CaptureQueriesContext(connection) as queries:
        assert sod.sod_violations() == []
    assert len(queries) == 1


# --- Access requests ---------------------------------------------------------------------------


def test_a_request_that_creates_a_conflict_gets_the_control_owners_step(cast, pay, django_capture_on_commit_callbacks):
    hold(cast.employee, pay.submit, "submitter")
    request = ask(cast, pay.approve, level="approver")
    manager_step, control_step = request.steps.order_by("order")
    assert manager_step.kind == ApprovalStepKind.MANAGER
    assert (control_step.kind, control_step.approver, control_step.sod_rule) == (
        ApprovalStepKind.CONTROL,
        cast.other_owner,
        pay.rule,
    )
    assert control_step.status == ApprovalStepStatus.WAITING
    with django_capture_on_commit_callbacks(execute=True):
        approval_step_decide(step=manager_step, acting_user=cast.manager.user, approve=True)
    assert not SoDException.objects.exists()  # only the control owner's approval makes the exception
    with django_capture_on_commit_callbacks(execute=True):
        approval_step_decide(step=control_step, acting_user=cast.other_owner.user, approve=True, comment="Cover.")
    exception = SoDException.objects.get()
    assert (exception.rule, exception.employee, exception.approved_by, exception.access_request) == (
        pay.rule,
        cast.employee,
        cast.other_owner,
        request,
    )
    assert exception.starts_on == timezone.localdate()
    assert exception.ends_on == timezone.localdate() + datetime.timedelta(days=sod.APPROVAL_EXCEPTION_DAYS)
    assert exception.history.count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SOD_EXCEPTION_GRANTED, target_id=str(exception.pk))


def test_a_request_without_conflict_has_no_control_step(cast, pay):
    hold(cast.employee, pay.submit, "viewer")
    request = ask(cast, pay.approve, level="approver")
    assert list(request.steps.values_list("kind", flat=True)) == [ApprovalStepKind.MANAGER]


def test_a_refuse_rule_refuses_the_request_with_its_reason_and_writes_nothing(cast, pay):
    pay.rule.enforcement = SoDEnforcement.REFUSE
    sod.sod_rule_save(rule=pay.rule, acting_user=None)
    hold(cast.employee, pay.submit, "submitter")
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as exc:
        ask(cast, pay.approve, level="approver")
    text = " ".join(exc.value.messages)
    assert "Refused by separation of duties" in text and "Whoever submits a payment must not approve it." in text
    assert "Orla Otherowner" in text
    assert not AccessRequest.objects.exists() and AuditEvent.objects.count() == before


def test_an_exception_in_force_needs_no_extra_step(cast, pay):
    hold(cast.employee, pay.submit, "submitter")
    SoDException.objects.create(
        rule=pay.rule,
        employee=cast.employee,
        starts_on=TODAY(),
        ends_on=TODAY() + datetime.timedelta(days=5),
        reason="Cover.",
        approved_by=cast.other_owner,
    )
    request = ask(cast, pay.approve, level="approver")
    assert list(request.steps.values_list("kind", flat=True)) == [ApprovalStepKind.MANAGER]


def test_the_control_owner_cannot_approve_their_own_conflict(cast, pay):
    hold(cast.other_owner, pay.submit, "submitter")
    with pytest.raises(ValidationError, match="nobody approves their own conflict"):
        ask(cast, pay.approve, who=cast.other_owner, level="approver")
    assert not AccessRequest.objects.exists()


def test_the_request_page_shows_the_conflict_and_what_a_request_needs(client, cast, pay):
    pay.approve.requestable = True
    pay.approve.save()
    hold(cast.employee, pay.submit, "submitter")
    client.force_login(cast.employee.user)
    page = client.get(reverse("access:request")).content.decode()
    assert "Separation of duties: what your current access rules out" in page
    assert "ERP payments (approver)" in page and "Whoever submits a payment must not approve it." in page
    assert "needs an extra approval by Orla Otherowner" in page
    assert "ERP payments (viewer)" not in page


def test_the_request_page_names_the_refusal_and_the_control_step_shows_on_the_request(client, cast, pay):
    hold(cast.employee, pay.submit, "submitter")
    request = ask(cast, pay.approve, level="approver")
    client.force_login(cast.employee.user)
    page = client.get(reverse("access:request_detail", args=[request.pk])).content.decode()
    assert "Control owner (separation of duties)" in page and "Payments: submit vs approve" in page
    response = client.post(
        reverse("access:request"),
        {"application": pay.approve.pk, "level": "approver", "justification": "Again."},
    )
    assert response.status_code == 200  # refused as already pending, on the form
    pay.rule.enforcement = SoDEnforcement.REFUSE
    sod.sod_rule_save(rule=pay.rule, acting_user=None)
    client.force_login(cast.teammate.user)
    hold(cast.teammate, pay.submit, "submitter")
    response = client.post(
        reverse("access:request"),
        {"application": pay.approve.pk, "level": "approver", "justification": "I need it."},
    )
    assert "Refused by separation of duties" in response.content.decode()
    assert AccessRequest.objects.filter(employee=cast.teammate).count() == 0


# --- Exceptions --------------------------------------------------------------------------------


def _exception(cast, pay, **overrides):
    values = {
        "rule": pay.rule,
        "employee": cast.employee,
        "starts_on": TODAY(),
        "ends_on": TODAY() + datetime.timedelta(days=30),
        "reason": "Month-end cover while Tom is away.",
        "approved_by": cast.other_owner,
    }
    values.update(overrides)
    return SoDException(**values)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"ends_on": TODAY() - datetime.timedelta(days=1), "starts_on": TODAY()}, "end date is before its start date"),
        (
            {"starts_on": TODAY() - datetime.timedelta(days=9), "ends_on": TODAY() - datetime.timedelta(days=2)},
            "is in the past",
        ),
        ({"employee": "teammate"}, "holds neither side"),
        ({"approved_by": "employee"}, "Nobody approves an exception for their own access"),
        ({"reason": ""}, "This field cannot be blank"),
    ],
)
def test_a_bad_exception_is_refused_with_a_plain_message_and_nothing_is_written(cast, pay, overrides, message):
    hold(cast.employee, pay.submit, "submitter")
    hold(cast.employee, pay.approve, "approver")
    for key in ("employee", "approved_by"):
        if isinstance(overrides.get(key), str):
            overrides[key] = getattr(cast, overrides[key])
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as exc:
        sod.sod_exception_grant(exception=_exception(cast, pay, **overrides), acting_user=cast.users["head"])
    assert message in " ".join(exc.value.messages)
    assert not SoDException.objects.exists() and AuditEvent.objects.count() == before


def test_an_exception_is_granted_in_history_and_audit_and_ended_early(cast, pay):
    hold(cast.employee, pay.submit, "submitter")
    hold(cast.employee, pay.approve, "approver")
    head = cast.users["head"]
    exception = sod.sod_exception_grant(exception=_exception(cast, pay), acting_user=head)
    assert exception.history.get().history_user == head
    assert [c.excepted for c in sod.sod_violations()] == [True]
    ended = sod.sod_exception_end(exception=exception, acting_user=head)
    assert ended.ended_at is not None and ended.history.count() == 2
    assert [c.excepted for c in sod.sod_violations()] == [False]
    actions = list(
        AuditEvent.objects.filter(target_type="accounts.SoDException").order_by("seq").values_list("action", flat=True)
    )
    assert actions == [AuditEvent.Action.SOD_EXCEPTION_GRANTED, AuditEvent.Action.SOD_EXCEPTION_ENDED]


# --- Grants by hand (IT in the admin) -------------------------------------------------------------


def test_a_grant_by_hand_that_breaks_a_rule_is_refused_and_writes_nothing(cast, pay):
    from accounts.models import Entitlement
    from accounts.services.entitlements import entitlement_grant

    hold(cast.employee, pay.submit, "submitter")
    before = (Entitlement.objects.count(), AuditEvent.objects.count())
    with pytest.raises(ValidationError) as exc:
        entitlement_grant(employee=cast.employee, application=pay.approve, level="approver", acting_user=None)
    message = " ".join(exc.value.messages)
    assert "Payments: submit vs approve" in message and "Whoever submits a payment" in message
    assert "add an exception for this person first" in message
    assert (Entitlement.objects.count(), AuditEvent.objects.count()) == before
    # Another level of the same application breaks no rule.
    entitlement_grant(employee=cast.employee, application=pay.approve, level="viewer", acting_user=None)


def test_an_exception_allowed_before_the_grant_by_hand_lets_it_through(cast, pay):
    from accounts.services.entitlements import entitlement_grant

    hold(cast.employee, pay.submit, "submitter")  # one side held: IT may allow the other in advance
    sod.sod_exception_grant(exception=_exception(cast, pay), acting_user=cast.users["head"])
    entitlement_grant(employee=cast.employee, application=pay.approve, level="approver", acting_user=None)
    assert [c.excepted for c in sod.sod_violations()] == [True]


def test_the_admins_grant_form_names_the_conflict_and_grants_nothing(client, it_admin, cast, pay):
    from accounts.models import Entitlement

    hold(cast.employee, pay.submit, "submitter")
    client.force_login(it_admin)
    response = client.post(
        reverse("admin:accounts_entitlement_add"),
        {"employee": cast.employee.pk, "application": pay.approve.pk, "level": "approver"},
    )
    assert response.status_code == 200
    assert "would hold a separation-of-duties conflict" in response.content.decode()
    assert not Entitlement.objects.filter(employee=cast.employee, application=pay.approve).exists()


# --- Admin: rules, exceptions, the report ------------------------------------------------------


def test_it_admin_adds_a_rule_in_the_admin_and_a_bad_one_is_refused_on_the_form(client, it_admin, cast, pay):
    client.force_login(it_admin)
    url = reverse("admin:accounts_sodrule_add")
    base = {
        "name": "Payroll vs bank",
        "reason": "Payroll clerks do not release payments.",
        "first_application": cast.other_app.pk,
        "first_level": "",
        "second_application": pay.submit.pk,
        "second_level": "submitter",
        "enforcement": "refuse",
        "control_owner": cast.other_owner.pk,
        "active": "on",
    }
    same = {**base, "second_application": cast.other_app.pk, "second_level": ""}
    response = client.post(url, same)
    assert response.status_code == 200
    assert "Both sides name the same thing" in response.content.decode()
    assert SoDRule.objects.count() == 1
    assert client.post(url, base).status_code == 302
    rule = SoDRule.objects.get(name="Payroll vs bank")
    assert rule.history.get().history_user == it_admin
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SOD_RULE_SAVED, target_id=str(rule.pk)).exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"ends_on": "2020-01-01"}, "end date is before its start date"),
        ({"employee": "teammate"}, "holds neither side"),
    ],
)
def test_a_bad_exception_is_refused_on_the_admin_form(client, it_admin, cast, pay, change, message):
    hold(cast.employee, pay.submit, "submitter")
    hold(cast.employee, pay.approve, "approver")
    client.force_login(it_admin)
    data = {
        "rule": pay.rule.pk,
        "employee": cast.employee.pk,
        "starts_on": TODAY().isoformat(),
        "ends_on": (TODAY() + datetime.timedelta(days=10)).isoformat(),
        "reason": "Cover.",
        "approved_by": cast.other_owner.pk,
    }
    for key, value in change.items():
        data[key] = getattr(cast, value).pk if key == "employee" else value
    response = client.post(reverse("admin:accounts_sodexception_add"), data)
    assert response.status_code == 200 and message in response.content.decode()
    assert not SoDException.objects.exists()
    data.update(employee=cast.employee.pk, ends_on=(TODAY() + datetime.timedelta(days=10)).isoformat())
    assert client.post(reverse("admin:accounts_sodexception_add"), data).status_code == 302
    assert SoDException.objects.get().created_by == it_admin


def test_the_auditor_reads_the_report_and_exports_it_formula_safe(client, cast, pay):
    sneaky = EmployeeFactory(first_name="=HYPERLINK(1)", last_name="Sneaky")
    hold(sneaky, pay.submit, "submitter")
    hold(sneaky, pay.approve, "approver")
    hold(cast.employee, pay.submit, "submitter")
    hold(cast.employee, pay.approve, "approver")
    sod.sod_exception_grant(exception=_exception(cast, pay), acting_user=None)
    client.force_login(cast.auditor)
    page = client.get(reverse("admin:accounts_sodrule_violations")).content.decode()
    assert "1 violation (no exception), 1 allowed by an exception in force" in page
    assert "Sneaky" in page and "Erin Employee" in page
    rows = list(
        csv.reader(
            io.StringIO(
                client.get(reverse("admin:accounts_sodrule_violations_export", args=["csv"])).content.decode(
                    "utf-8-sig"
                )
            )
        )
    )
    assert rows[0][:4] == ["Employee number", "Person", "Department", "Rule"]
    people = {row[1]: row for row in rows[1:]}
    assert "'=HYPERLINK(1) Sneaky" in people and people["'=HYPERLINK(1) Sneaky"][9] == "violation"
    assert people["Erin Employee"][9] == "excepted" and people["Erin Employee"][11] == "Orla Otherowner"
    xlsx = client.get(reverse("admin:accounts_sodrule_violations_export", args=["xlsx"]))
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet.cell(row=1, column=4).value == "Rule" and sheet.max_row == 3
    assert client.get(reverse("admin:accounts_sodrule_violations_export", args=["pdf"])).status_code == 404
    # Read only: the auditor adds no rule and grants no exception.
    assert client.get(reverse("admin:accounts_sodrule_add")).status_code == 403
    assert client.get(reverse("admin:accounts_sodexception_add")).status_code == 403


def test_the_report_is_closed_to_people_without_the_view_permission(client, cast, pay):
    client.force_login(cast.employee.user)
    response = client.get(reverse("admin:accounts_sodrule_violations"))
    assert response.status_code == 302 and "/login/" in response["Location"]
    client.logout()
    assert client.get(reverse("admin:accounts_sodrule_violations_export", args=["csv"])).status_code == 302


def test_the_report_page_costs_the_same_queries_whatever_the_number_of_violations(client, it_admin, pay):
    _people_holding_both(pay, 1)
    client.force_login(it_admin)
    url = reverse("admin:accounts_sodrule_violations")
    client.get(url)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    _people_holding_both(pay, 20)
    with CaptureQueriesContext(connection) as large:
        response = client.get(url)
    assert len(response.context["rows"]) == 21
    assert len(large) == len(small)


# --- Access reviews ----------------------------------------------------------------------------


@pytest.fixture
def review(cast, pay):
    hold(cast.employee, pay.submit, "submitter")
    hold(cast.employee, pay.approve, "approver")
    hold(cast.teammate, pay.submit, "submitter")
    today = timezone.localdate()
    campaign = reviews.review_campaign_save(
        campaign=AccessReview(
            name="Q1 review", starts_on=today, due_on=today + datetime.timedelta(days=10), scope_everything=True
        ),
        acting_user=None,
    )
    return reviews.review_campaign_launch(campaign=campaign, acting_user=None)


def test_the_reviewer_sees_the_conflict_on_the_list_and_the_item(client, cast, review, pay):
    client.force_login(cast.manager.user)
    response = client.get(reverse("access:reviews"))
    marked = {(i.employee_name, i.application_name): bool(i.sod_conflicts) for i in response.context["items"]}
    assert marked == {
        ("Erin Employee", "Bank portal"): True,
        ("Erin Employee", "ERP payments"): True,
        ("Tom Teammate", "Bank portal"): False,
    }
    assert "Separation of duties: Bank portal (submitter) with ERP payments (approver)" in response.content.decode()
    item = review.items.get(employee=cast.employee, application=pay.approve)
    page = client.get(reverse("access:review_item", args=[item.pk])).content.decode()
    assert "Conflict: Bank portal (submitter) with ERP payments (approver)" in page
    assert "consider revoking one of the two" in page


def test_the_reviewers_page_costs_the_same_queries_with_more_conflicting_items(client, cast, review, pay):
    client.force_login(cast.manager.user)
    url = reverse("access:reviews")
    client.get(url)
    with CaptureQueriesContext(connection) as small:
        client.get(url)
    for _ in range(6):
        person = EmployeeFactory(manager=cast.manager)
        hold(person, pay.submit, "submitter")
        hold(person, pay.approve, "approver")
    today = timezone.localdate()
    more = reviews.review_campaign_save(
        campaign=AccessReview(
            name="Q2 review", starts_on=today, due_on=today + datetime.timedelta(days=11), scope_everything=True
        ),
        acting_user=None,
    )
    reviews.review_campaign_launch(campaign=more, acting_user=None)
    with CaptureQueriesContext(connection) as large:
        response = client.get(url)
    assert sum(1 for i in response.context["items"] if i.sod_conflicts) > 10
    assert len(large) == len(small)
