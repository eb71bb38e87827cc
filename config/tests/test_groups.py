"""What each staff group may do in the admin (auditor, helpdesk, IT admin), one test per registered Portal model.

The models are read from `admin.site`, not listed by hand, so a newly registered model is
covered (and one that is not registered fails `test_every_model_is_registered`); each is its
own test case, so one model's failure hides no other's.
"""

import datetime

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.test import RequestFactory
from django.urls import NoReverseMatch, reverse

from accounts.models import ApprovalDelegation, ApprovalStep, ApprovalStepKind, Employee, Location
from accounts.scim.services import scim_connection_create
from accounts.tests.factories import (
    AccessRequestFactory,
    ApplicationFactory,
    EmployeeFactory,
    EntitlementFactory,
    RoleFactory,
    UserFactory,
)
from api.models import IdempotencyKey
from api.services import api_token_create
from assets.models import RoleKitItem
from assets.services import asset_check_out
from assets.tests.factories import AssetModelFactory, HardwareAssetFactory, LicenseFactory
from offboarding.engine import run_start
from offboarding.models import ChangeRequest, ChecklistKind, ChecklistTemplate, HardwareReturn, TaskTemplate
from portal.groups import PORTAL_APPS
from portal.mail import email_send_on_commit

pytestmark = pytest.mark.django_db


def portal_model_admins():
    return sorted(
        (
            (model, model_admin)
            for model, model_admin in admin.site._registry.items()
            if model._meta.app_label in PORTAL_APPS
        ),
        key=lambda pair: pair[0]._meta.label,
    )


MODELS = [model for model, _ in portal_model_admins()]
per_model = pytest.mark.parametrize("model", MODELS, ids=lambda model: model._meta.label)


def first_row(model):
    """The model's first row, which `one_of_everything` must have made."""
    obj = model._default_manager.first()
    assert obj is not None, f"the fixture makes no {model._meta.label}"
    return obj


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def has_url(model, view, *args):
    try:
        url(model, view, *args)
    except NoReverseMatch:
        return False
    return True


@pytest.fixture
def one_of_everything(it_admin):
    """At least one row of every registered model, so change, history and delete pages have a target."""
    manager = EmployeeFactory(role=RoleFactory())
    employee = EmployeeFactory(manager=manager, role=manager.role)
    application = ApplicationFactory(owner=manager)
    manager.role.birthrights.create(application=application, access_level="user")
    EntitlementFactory(employee=employee, application=application)
    request = AccessRequestFactory(employee=employee, application=ApplicationFactory())
    ApprovalStep.objects.create(request=request, order=1, kind=ApprovalStepKind.MANAGER, approver=manager)
    asset = HardwareAssetFactory(location=employee.location)
    asset_check_out(asset=asset, employee=employee, acting_user=it_admin)  # also writes an audit event
    RoleKitItem.objects.create(role=manager.role, asset_model=AssetModelFactory())
    LicenseFactory(application=application)
    template = ChecklistTemplate.objects.create(name="Leaver basics", kind=ChecklistKind.LEAVE)
    TaskTemplate.objects.create(checklist=template, key="collect-badge", title="Collect the badge")
    run = run_start(
        employee=employee, kind=ChecklistKind.LEAVE, event_date=datetime.date(2030, 1, 31), acting_user=it_admin
    )
    HardwareReturn.objects.create(run=run, employee=employee, asset=asset, due_date=datetime.date(2030, 2, 7))
    ApprovalDelegation.objects.create(
        delegator=manager, delegate=employee, starts_on=datetime.date(2030, 1, 1), ends_on=datetime.date(2030, 1, 5)
    )
    ChangeRequest.objects.create(
        employee=employee,
        kind="leave",
        requested_by=manager,
        effective_date=datetime.date(2030, 1, 31),
        reason="Resigned.",
    )
    scim_connection_create(name="Okta", acting_user=it_admin)
    api_token_create(user=it_admin, name="CI", expires_in_days=None, acting_user=it_admin)
    IdempotencyKey.objects.create(
        user=it_admin, key="k-1", fingerprint="0" * 64, method="POST", path="/api/v1/tasks/1/skip/", response_status=200
    )
    email_send_on_commit(
        template="access_expiring",
        to=[employee.work_email],
        context={"employee": employee, "entitlement": employee.entitlements.first(), "url": "http://portal/"},
    )
    # Usage feeds and event hooks.
    from django.utils import timezone

    from accounts.models import UnmatchedUsage, UsageImport, UsageSource
    from portal.models import EventDelivery, EventSubscriber

    usage = UsageImport.objects.create(source=UsageSource.API, status=UsageImport.Status.DONE, created_by=it_admin)
    UnmatchedUsage.objects.create(
        source=UsageSource.OKTA,
        app_name="Notion",
        app_key="notion",
        user="someone@example.com",
        user_key="someone@example.com",
        reason=UnmatchedUsage.Reason.NO_APPLICATION,
        count=1,
        first_seen=timezone.now(),
        last_seen=timezone.now(),
        last_import=usage,
    )
    subscriber = EventSubscriber.objects.create(
        name="HR", url="https://hr.example.com/hooks", secret="s" * 20, events=["employee.left"]
    )
    from accounts.models import EmployeeImport

    EmployeeImport.objects.create(created_by=it_admin, file_name="people.csv", status="done")
    EventDelivery.objects.create(
        subscriber=subscriber,
        event_id="6f1c7f0e-0000-4000-8000-000000000001",
        event_type="employee.left",
        payload={"event": "employee.left"},
    )
    # An access review, launched: its item freezes the employee's entitlement.
    from accounts.models import AccessReview
    from accounts.services import reviews

    campaign = AccessReview(name="Q1 review", starts_on=datetime.date(2030, 1, 1), due_on=datetime.date(2030, 1, 15))
    campaign = reviews.review_campaign_save(campaign=campaign, acting_user=it_admin)
    campaign.applications.set([application])
    manager.user = UserFactory(username="reviewing-manager")  # a reviewer needs a login
    manager.save()
    reviews.review_campaign_launch(campaign=campaign, acting_user=it_admin)
    # Separation of duties: a rule the employee breaks, and the exception that allows it.
    from accounts.tests.helpers import breaking_with_exception, payments_rule

    rule = payments_rule(control_owner=manager, acting_user=it_admin)
    breaking_with_exception(rule, employee=employee, approved_by=manager, acting_user=it_admin)
    # Second factor: a recovery code set (its codes are stored hashed).
    from portal.mfa import recovery_codes_issue

    recovery_codes_issue(user=employee.user or it_admin, acting_user=it_admin)

    # Scoped administration: a helpdesk colleague limited to the employee's office.
    from accounts.models import AdminScope
    from accounts.services.scopes import admin_scope_save
    from portal.groups import IT_HELPDESK

    colleague = UserFactory(username="desk-colleague", is_staff=True)
    colleague.groups.add(Group.objects.get(name=IT_HELPDESK))
    admin_scope_save(
        scope=AdminScope(user=colleague), departments=[], locations=[employee.location], acting_user=it_admin
    )

    # The audit chain: a head (PostgreSQL appends make it; SQLite needs none) and a signed checkpoint.
    from portal.models import AuditChainHead, AuditCheckpoint, AuditEvent

    last = AuditEvent.objects.order_by("-seq").first()
    AuditChainHead.objects.get_or_create(pk=1, defaults={"seq": last.seq, "hash": last.hash})
    AuditCheckpoint.objects.create(seq=last.seq, hash=last.hash, key_id="0" * 16, signature="0" * 128)


# Models with no admin of their own, each with the reason.
NOT_REGISTERED = {
    "portal.RecoveryCode": "one hashed single-use code; its set's admin (RecoveryCodeDevice) shows how many are left",
}


def test_every_model_is_registered():
    """Every concrete Portal model (but history and object-permission tables) has an admin."""
    expected = {
        model
        for label in PORTAL_APPS
        for model in apps.get_app_config(label).get_models()
        if not model.__name__.startswith("Historical")
        and not model.__name__.endswith("ObjectPermission")
        and model._meta.label not in NOT_REGISTERED
    }
    registered = {model for model, _ in portal_model_admins()}
    assert expected - registered == set()


@per_model
def test_one_of_everything_makes_a_row_of_the_model(model, one_of_everything):
    first_row(model)


# --- Auditor: sees everything, changes nothing ------------------------------------------------------


@per_model
def test_auditor_views_every_changelist_change_page_and_history(client, auditor, one_of_everything, model):
    client.force_login(auditor)
    obj = first_row(model)
    assert client.get(url(model, "changelist")).status_code == 200
    assert client.get(url(model, "change", obj.pk)).status_code == 200
    if has_url(model, "history", obj.pk):
        assert client.get(url(model, "history", obj.pk)).status_code == 200


@per_model
def test_auditor_cannot_add_change_or_delete_anything(client, auditor, one_of_everything, model):
    client.force_login(auditor)
    obj = first_row(model)
    count = model._default_manager.count()
    assert client.post(url(model, "add"), {}).status_code == 403
    assert client.post(url(model, "change", obj.pk), {}).status_code == 403
    assert client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model._default_manager.count() == count


@pytest.mark.parametrize(
    "model", [model for model in MODELS if hasattr(model, "history")], ids=lambda model: model._meta.label
)
def test_auditor_cannot_revert_from_history(client, auditor, one_of_everything, model):
    client.force_login(auditor)
    obj = first_row(model)
    version = obj.history.first()
    history_form = url(model, "simple_history", obj.pk, version.history_id)
    assert client.get(history_form).status_code == 200
    assert client.post(history_form, {}).status_code == 403


@per_model
def test_auditor_is_offered_no_actions_and_no_import_but_can_export(client, auditor, one_of_everything, model):
    model_admin = admin.site._registry[model]
    client.force_login(auditor)
    request = RequestFactory().get("/")
    request.user = auditor
    assert model_admin.get_actions(request) == {}
    response = client.get(url(model, "changelist"))
    assert response.context["action_form"] is None
    if hasattr(model_admin, "has_import_permission"):
        assert not model_admin.has_import_permission(request)
        assert response.context["has_import_permission"] is False
        assert client.get(url(model, "import")).status_code == 403
        assert client.post(url(model, "process_import"), {}).status_code == 403
    if hasattr(model_admin, "has_export_permission"):
        assert model_admin.has_export_permission(request)
        assert client.get(url(model, "export")).status_code == 200


def test_auditor_export_downloads_a_csv(client, auditor, one_of_everything):
    client.force_login(auditor)
    # The export form names each field after the registered resource class: `<resource>_<field>`.
    resource_class = admin.site.get_model_admin(Employee).resource_classes[0]
    data = {"format": "0", "resource": "0"}
    data.update({f"{resource_class.__name__.lower()}_{name}": "on" for name in resource_class.fields})
    response = client.post(url(Employee, "export"), data)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = response.content.decode()
    assert body.splitlines()[0].startswith("employee_number,first_name")
    assert Employee.objects.first().employee_number in body


def test_auditor_cannot_run_an_action_by_posting_it(client, auditor, one_of_everything):
    from assets.models import HardwareAsset

    client.force_login(auditor)
    asset = HardwareAsset.objects.get()
    response = client.post(
        url(HardwareAsset, "changelist"),
        {"action": "check_in", "_selected_action": [asset.pk], "index": 0, "apply": "1", "condition": "ok"},
    )
    asset.refresh_from_db()
    assert asset.status == "assigned"
    assert response.status_code in (200, 302, 403)


# --- Helpdesk: day-to-day changes, no deletes, no users or groups ------------------------------------------


@per_model
def test_helpdesk_cannot_delete_anything(client, helpdesk, one_of_everything, model):
    model_admin = admin.site._registry[model]
    client.force_login(helpdesk)
    request = RequestFactory().get("/")
    request.user = helpdesk
    obj = first_row(model)
    assert not model_admin.has_delete_permission(request, obj)
    assert "delete_selected" not in model_admin.get_actions(request)
    assert client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model._default_manager.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("model", [User, Group], ids=lambda model: model._meta.label)
def test_helpdesk_cannot_touch_users_or_groups(client, helpdesk, model):
    client.force_login(helpdesk)
    assert client.get(url(model, "changelist")).status_code == 403
    assert client.post(url(model, "add"), {}).status_code == 403


def test_helpdesk_cannot_open_a_user(client, helpdesk):
    client.force_login(helpdesk)
    assert client.get(url(User, "change", helpdesk.pk)).status_code == 403


def test_helpdesk_changes_employees_but_only_views_settings(client, helpdesk, one_of_everything):
    client.force_login(helpdesk)
    employee = Employee.objects.filter(manager__isnull=False).get()
    response = client.get(url(Employee, "change", employee.pk))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is True
    location = Location.objects.first()
    assert client.post(url(Location, "change", location.pk), {"name": "Renamed"}).status_code == 403
    location.refresh_from_db()
    assert location.name != "Renamed"


# --- IT admin: everything ---------------------------------------------------------------------------------


@per_model
def test_it_admin_reaches_every_page(client, it_admin, one_of_everything, model):
    model_admin = admin.site._registry[model]
    client.force_login(it_admin)
    request = RequestFactory().get("/")
    request.user = it_admin
    obj = first_row(model)
    assert client.get(url(model, "changelist")).status_code == 200
    assert client.get(url(model, "change", obj.pk)).status_code == 200
    if model_admin.has_add_permission(request):
        assert client.get(url(model, "add")).status_code == 200
    if hasattr(model_admin, "has_import_permission"):
        assert model_admin.has_import_permission(request)
        assert client.get(url(model, "import")).status_code == 200
        assert client.get(url(model, "export")).status_code == 200


@pytest.mark.parametrize("model", [User, Group], ids=lambda model: model._meta.label)
def test_it_admin_reaches_users_and_groups(client, it_admin, model):
    client.force_login(it_admin)
    assert client.get(url(model, "changelist")).status_code == 200


def test_it_admin_may_change_and_delete_settings(client, it_admin, one_of_everything):
    client.force_login(it_admin)
    location = Location.objects.create(name="Spare", code="SPR", country="FR", region="emea")
    response = client.post(
        url(Location, "change", location.pk),
        {"name": "Paris", "code": "PAR-1", "country": "FR", "region": "emea", "city": "Paris"},
    )
    assert response.status_code == 302
    location.refresh_from_db()
    assert location.name == "Paris"
    assert location.history.first().history_user == it_admin
    assert client.post(url(Location, "delete", location.pk), {"post": "yes"}).status_code == 302
    assert not Location.objects.filter(pk=location.pk).exists()


# --- Scoped helpdesk: the helpdesk's pages, only inside its scope (accounts.scoping) ------------------------
# `scoped_helpdesk` is limited to `scope_department`, where nobody of `one_of_everything` works: every row
# about a person or a place is outside until `everything_in_scope` moves them all in.


def scoped_rows(model, user, *, inside: bool):
    from accounts.scoping import allows

    rows = list(model._default_manager.all())
    return [row for row in rows if allows(row, user) is inside]


def everything_in_scope(scope_department, scoped_helpdesk, it_admin):
    """Everyone in the scope's department (it_admin too, who holds the recovery codes), and the scoped login's
    own token, idempotency key and HR import."""
    from accounts.models import EmployeeImport, UnmatchedUsage

    if not Employee.objects.filter(user=it_admin).exists():
        EmployeeFactory(user=it_admin)
    Employee.objects.update(department=scope_department)
    UnmatchedUsage.objects.update(employee=Employee.objects.first())
    api_token_create(user=scoped_helpdesk, name="Desk", expires_in_days=None, acting_user=scoped_helpdesk)
    IdempotencyKey.objects.create(
        user=scoped_helpdesk, key="k-2", fingerprint="1" * 64, method="POST", path="/api/v1/x/", response_status=200
    )
    EmployeeImport.objects.create(created_by=scoped_helpdesk, file_name="mine.csv", status="done")


def changelist_pks(response):
    return {obj.pk for obj in response.context["cl"].result_list}


def test_every_admin_model_has_a_scope_rule_and_every_admin_applies_it():
    from accounts.scoping import scope_rule
    from portal.admin import ScopedAdminMixin

    for model, model_admin in portal_model_admins():
        rule = scope_rule(model)
        assert rule is not None, f"{model._meta.label} has no scope rule (register_scope)"
        assert rule.reason or not (rule.unrestricted or rule.hidden), model._meta.label
        assert isinstance(model_admin, ScopedAdminMixin), f"{type(model_admin).__name__} does not restrict"


@per_model
def test_scoped_helpdesk_gets_404_for_rows_outside_its_scope(client, scoped_helpdesk, one_of_everything, model):
    from accounts.scoping import scope_rule

    client.force_login(scoped_helpdesk)
    if scope_rule(model).unrestricted:
        obj = first_row(model)
        assert obj.pk in changelist_pks(client.get(url(model, "changelist")))
        assert client.get(url(model, "change", obj.pk)).status_code == 200
        return
    outside = scoped_rows(model, scoped_helpdesk, inside=False)
    assert outside, f"the fixture makes no {model._meta.label} outside the scope"
    obj = outside[0]
    response = client.get(url(model, "changelist"))
    assert response.status_code == 200
    assert obj.pk not in changelist_pks(response)
    assert client.get(url(model, "change", obj.pk)).status_code == 404
    assert client.post(url(model, "change", obj.pk), {}).status_code in (403, 404)
    if has_url(model, "history", obj.pk):
        assert client.get(url(model, "history", obj.pk)).status_code == 404
    if hasattr(model, "history"):
        version = obj.history.first()
        assert client.get(url(model, "simple_history", obj.pk, version.history_id)).status_code == 404


@per_model
def test_scoped_helpdesk_sees_and_opens_rows_inside_its_scope(
    client, scoped_helpdesk, scope_department, it_admin, one_of_everything, model
):
    from accounts.scoping import scope_rule

    everything_in_scope(scope_department, scoped_helpdesk, it_admin)
    client.force_login(scoped_helpdesk)
    if scope_rule(model).hidden:
        assert client.get(url(model, "changelist")).context["cl"].result_count == 0
        return
    inside = scoped_rows(model, scoped_helpdesk, inside=True)
    assert inside, f"no {model._meta.label} inside the scope"
    obj = inside[0]
    if obj.pk in {row.pk for row in admin.site._registry[model].get_base_queryset(_request(scoped_helpdesk))}:
        assert obj.pk in changelist_pks(client.get(url(model, "changelist")))
        assert client.get(url(model, "change", obj.pk)).status_code == 200


def _request(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


@pytest.mark.parametrize("inside", [False, True], ids=["outside", "inside"])
@per_model
def test_scope_rule_read_from_an_object_agrees_with_the_query(
    scoped_helpdesk, scope_department, it_admin, one_of_everything, model, inside
):
    """`allows` (forms: an object before it is saved) and `restrict` (every read) are one rule."""
    from accounts.scoping import allows, restrict

    if inside:
        everything_in_scope(scope_department, scoped_helpdesk, it_admin)
    visible = set(restrict(model._default_manager.all(), scoped_helpdesk).values_list("pk", flat=True))
    for row in model._default_manager.all():
        assert allows(row, scoped_helpdesk) is (row.pk in visible), row


@per_model
def test_scoped_helpdesk_actions_do_nothing_to_rows_outside_its_scope(
    client, scoped_helpdesk, one_of_everything, model
):
    """Every action offered to the scoped login, posted (and applied) with the id of a row outside its scope."""
    from accounts.scoping import scope_rule
    from portal.models import AuditEvent

    if scope_rule(model).unrestricted:
        return
    model_admin = admin.site._registry[model]
    actions = model_admin.get_actions(_request(scoped_helpdesk))
    obj = scoped_rows(model, scoped_helpdesk, inside=False)[0]
    before = model._default_manager.filter(pk=obj.pk).values().get()
    events = AuditEvent.objects.count()
    client.force_login(scoped_helpdesk)
    for name in actions:
        response = client.post(
            url(model, "changelist"),
            {"action": name, "_selected_action": [obj.pk], "index": 0, "apply": "1", "post": "yes"},
        )
        assert response.status_code in (200, 302)
        assert model._default_manager.filter(pk=obj.pk).values().get() == before, name
    assert AuditEvent.objects.count() == events


@per_model
def test_scoped_helpdesk_exports_only_rows_inside_its_scope(client, scoped_helpdesk, one_of_everything, model):
    from accounts.scoping import scope_rule

    model_admin = admin.site._registry[model]
    if not hasattr(model_admin, "has_export_permission"):
        return
    client.force_login(scoped_helpdesk)
    resource_class = model_admin.get_export_resource_classes(_request(scoped_helpdesk))[0]
    data = {"format": "0", "resource": "0"}
    fields = list(resource_class().get_export_order())
    data.update({f"{resource_class.__name__.lower()}_{name}": "on" for name in fields})
    response = client.post(url(model, "export"), data)
    assert response.status_code == 200
    lines = [line for line in response.content.decode().splitlines() if line.strip()]
    # Counted by the rule read from each object (`allows`), not by the query under test.
    assert len(lines) - 1 == len(scoped_rows(model, scoped_helpdesk, inside=True))
    if not scope_rule(model).unrestricted:
        assert len(lines) == 1, f"{model._meta.label}: rows outside the scope exported"
