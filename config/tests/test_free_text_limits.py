"""Every free-text field has a length limit: 200,000 characters typed into any self-service form, admin
form or service are refused with a message naming the field and the limit, and nothing is written.

The limits live on the model fields (`portal.limits.limited_text`); the completeness test below fails
when a new `TextField` comes without one.
"""

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import models
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccessRequest, ApprovalDelegation
from accounts.services.access_requests import access_request_create
from accounts.services.approval_steps import approval_step_decide
from offboarding import engine
from offboarding.flows.change_requests import change_request_decline
from offboarding.models import Assignee, ChangeRequest, Task, TaskStatus
from offboarding.tests.factories import ChangeRequestFactory, TaskFactory
from portal.limits import SHORT_TEXT, TextLengthValidator
from portal.testing.assertions import database_snapshot, refused_and_nothing_written

pytestmark = pytest.mark.django_db

HUGE = "x" * 200_000
TOO_LONG = f"is too long: at most {SHORT_TEXT} characters (this has 200000)."

# Written by Portal itself, never typed by a person (and never shown in a form).
NOT_TYPED = {
    "offboarding.Task.last_error": "the connector's error, written by the engine",
    "portal.OutboundEmail.recipients": "the outbox: addresses of a rendered email",
    "portal.OutboundEmail.body": "the outbox: an email Portal rendered from its templates",
    "portal.OutboundEmail.html": "the outbox: an email Portal rendered from its templates",
    "portal.OutboundEmail.last_error": "the outbox: the mail server's answer",
    "portal.EventDelivery.last_error": "event hooks: the receiver's answer, cut to 4,000 characters",
    "accounts.UsageImport.error": "usage feeds: why the file was refused, cut to 4,000 characters",
    "accounts.EmployeeImport.error": "HR imports: a fixed sentence the import service writes when it stops",
}


def _text_fields():
    for model in apps.get_models():
        if model._meta.app_label not in {"portal", "accounts", "assets", "offboarding"}:
            continue
        if model.__name__.startswith("Historical"):
            continue
        for field in model._meta.get_fields():
            if isinstance(field, models.TextField) and not isinstance(field, models.JSONField):
                yield f"{model._meta.label}.{field.name}", field


def test_every_free_text_field_has_a_length_limit_its_validator_enforces():
    missing = []
    for label, field in _text_fields():
        if label in NOT_TYPED:
            continue
        validators = [v for v in field.validators if isinstance(v, TextLengthValidator)]
        if not validators or field.max_length != validators[0].limit_value:
            missing.append(label)
    assert not missing, f"free-text fields without a TextLengthValidator matching max_length: {missing}"


def _signed_in(client, cast, name):
    client.force_login(cast.users[name])
    return client


def _page_says(response, message_part: str) -> bool:
    return message_part in response.content.decode()


def test_a_huge_justification_is_refused_on_the_request_form(client, cast):
    _signed_in(client, cast, "employee")
    before = database_snapshot()
    response = client.post(
        reverse("access:request"),
        {"application": cast.app.pk, "level": "read", "justification": HUGE},
    )
    assert response.status_code == 200
    assert _page_says(response, f"The justification {TOO_LONG}")
    assert database_snapshot() == before


def test_a_huge_justification_is_refused_by_the_service(cast):
    with refused_and_nothing_written(Exception, match="The justification is too long"):
        access_request_create(
            employee=cast.employee,
            application=cast.app,
            level="read",
            justification=HUGE,
            end_date=None,
            acting_user=cast.employee.user,
        )


def _pending_step(cast):
    request = access_request_create(
        employee=cast.employee,
        application=cast.app,
        level="read",
        justification="Reviews.",
        end_date=None,
        acting_user=cast.employee.user,
    )
    return request, request.steps.get(order=1)


def test_a_huge_rejection_comment_is_refused_on_the_decision_page(client, cast):
    request, step = _pending_step(cast)
    _signed_in(client, cast, "manager")
    before = database_snapshot()
    response = client.post(reverse("access:step_decide", args=[step.pk]), {"decision": "reject", "comment": HUGE})
    assert response.status_code in (200, 400)
    assert _page_says(response, f"The comment {TOO_LONG}")
    assert database_snapshot() == before


def test_a_huge_comment_is_refused_by_the_service(cast):
    request, step = _pending_step(cast)
    with refused_and_nothing_written(Exception, match="The comment is too long"):
        approval_step_decide(step=step, acting_user=cast.manager.user, approve=False, comment=HUGE)


@pytest.mark.parametrize("kind", ["leave", "move"])
def test_a_huge_leave_or_move_reason_is_refused_on_the_team_page(client, cast, kind):
    _signed_in(client, cast, "manager")
    before = database_snapshot()
    data = {"effective_date": (timezone.localdate()).isoformat(), "reason": HUGE}
    if kind == "move":
        data["new_manager"] = cast.other_manager.work_email
    response = client.post(reverse("offboarding:change_request", args=[cast.employee.pk, kind]), data)
    assert response.status_code in (200, 400)
    assert _page_says(response, f"The reason {TOO_LONG}")
    assert database_snapshot() == before
    assert not ChangeRequest.objects.exists()


def test_a_huge_decline_note_is_refused_by_the_service(cast):
    request = ChangeRequestFactory(employee=cast.employee, requested_by=cast.manager, reason="Resigned.")
    with refused_and_nothing_written(Exception, match="The note is too long"):
        change_request_decline(request=request, note=HUGE, acting_user=cast.helpdesk)


def _my_task(cast):
    return TaskFactory(
        run__employee=cast.employee, assignee=cast.employee, assignee_type=Assignee.EMPLOYEE, title="Read the handbook"
    )


def test_a_huge_task_note_is_refused_on_my_tasks(client, cast):
    task = _my_task(cast)
    _signed_in(client, cast, "employee")
    before = database_snapshot()
    response = client.post(reverse("offboarding:task_done", args=[task.pk]), {"note": HUGE}, follow=True)
    assert _page_says(response, f"The note {TOO_LONG}")
    assert database_snapshot() == before
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING


@pytest.mark.parametrize("how", ["complete", "skip", "retry"])
def test_a_huge_task_note_or_reason_is_refused_by_the_engine(cast, how):
    task = _my_task(cast)
    if how == "retry":
        Task.objects.filter(pk=task.pk).update(status=TaskStatus.FAILED)
    call = {
        "complete": lambda: engine.task_complete(task=task, acting_user=cast.employee.user, note=HUGE),
        "skip": lambda: engine.task_skip(task=task, acting_user=cast.helpdesk, reason=HUGE),
        "retry": lambda: engine.task_retry(task=task, acting_user=cast.helpdesk, reason=HUGE),
    }[how]
    with refused_and_nothing_written(Exception, match="The note is too long"):
        call()


def test_a_huge_delegation_reason_is_refused(client, cast):
    _signed_in(client, cast, "manager")
    today = timezone.localdate()
    response = client.post(
        reverse("access:delegations"),
        {"delegate": cast.owner.work_email, "starts_on": today, "ends_on": today, "reason": HUGE},
    )
    assert response.status_code in (200, 400)
    assert _page_says(response, "at most 200 characters (it has 200000)")
    assert not ApprovalDelegation.objects.exists()


@pytest.mark.parametrize(
    ("label", "field", "what"),
    [
        ("accounts.Application", "description", "The description"),
        ("accounts.Role", "description", "The description"),
        ("accounts.Employee", "home_address", "The home address"),
        ("assets.HardwareAsset", "notes", "The notes"),
        ("assets.License", "notes", "The notes"),
        ("offboarding.ChecklistTemplate", "description", "The description"),
    ],
)
def test_admin_forms_refuse_a_huge_text(it_admin, label, field, what):
    """The admin's own form for the model (as IT opens it) refuses the text on that field, with the limit."""
    model = apps.get_model(label)
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/")
    request.user = it_admin
    form_class = model_admin.get_form(request, obj=None)
    form = form_class(data={field: HUGE})
    assert not form.is_valid()
    limit = model._meta.get_field(field).max_length
    assert any(f"at most {limit} characters" in message for message in form.errors[field]), form.errors[field]
    assert form.fields[field].widget.attrs.get("maxlength") == str(limit)
    assert model._meta.get_field(field).validators[0].what == what


def test_access_requests_keep_a_normal_justification(cast):
    """The limit does not get in the way: a justification of exactly the limit is accepted."""
    request = access_request_create(
        employee=cast.employee,
        application=cast.app,
        level="read",
        justification="y" * SHORT_TEXT,
        end_date=None,
        acting_user=cast.employee.user,
    )
    assert AccessRequest.objects.get(pk=request.pk).justification == "y" * SHORT_TEXT
