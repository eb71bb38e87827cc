"""Every admin changelist issues a constant number of queries, pinned in `query_counts.json`.

Each registered model's changelist, seen by a superuser, is measured at 5 and at 30 rows, each row
with every relation the list shows filled in (department, location, manager, role, holder,
requester ...): a missing `list_select_related` shows up as a difference between the two counts,
and each count must equal its baseline in `config/tests/query_counts.json` (section
"admin_changelists"), above (a query added) or below (lower the baseline, keep it tight). The
models come from `admin.site._registry`, so a newly registered one fails until it has a row
builder here and a baseline. The employee change page and searches are checked at two sizes.

When a change moves the counts on purpose, regenerate the baselines and review the diff:

    PORTAL_UPDATE_QUERY_COUNTS=1 pytest config/tests/test_admin_queries.py config/tests/test_selfservice_queries.py
"""

import datetime
import itertools
import uuid
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential
from django_q.models import OrmQ, Schedule, Task
from django_q.signing import SignedPackage

from accounts.models import (
    ApprovalDelegation,
    ApprovalStep,
    ApprovalStepKind,
    Department,
    Employee,
    EmployeeImport,
    RoleApplication,
    ScimConnection,
    UnmatchedUsage,
    UsageImport,
    UsageSource,
)
from accounts.scim.services import scim_connection_create
from accounts.tests.factories import (
    AccessRequestFactory,
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    EntitlementFactory,
    LocationFactory,
    RoleFactory,
    UserFactory,
)
from api.models import IdempotencyKey
from api.services import api_token_create
from assets.models import RoleKitItem
from assets.services import asset_check_out
from assets.tests.factories import AssetModelFactory, HardwareAssetFactory, LicenseFactory
from offboarding.engine import run_start, task_add
from offboarding.models import ChangeRequest, ChecklistKind, ChecklistTemplate, HardwareReturn, TaskTemplate
from portal.audit import audit_record
from portal.mail import email_send_on_commit
from portal.mfa import recovery_codes_issue
from portal.models import AuditChainHead, AuditCheckpoint, AuditEvent, EventDelivery, EventSubscriber
from portal.testing.query_counts import QueryCountBaselines

pytestmark = pytest.mark.django_db

REGENERATE = (
    "PORTAL_UPDATE_QUERY_COUNTS=1 pytest config/tests/test_admin_queries.py config/tests/test_selfservice_queries.py"
)
BASELINES = QueryCountBaselines(
    Path(__file__).with_name("query_counts.json"), "admin_changelists", regenerate=REGENERATE
)
SIZES = (5, 30)

_counter = itertools.count()


def _employee(manager=None):
    return EmployeeFactory(manager=manager, role=RoleFactory())


def make_employees(n, user):
    boss = _employee()
    for _ in range(n - 1):
        _employee(manager=boss)


def make_assets(n, user):
    for _ in range(n):
        employee = _employee(manager=_employee())
        asset = HardwareAssetFactory(location=employee.location)
        asset_check_out(asset=asset, employee=employee, acting_user=user)


def make_entitlements(n, user):
    for _ in range(n):
        EntitlementFactory()


def make_licenses(n, user):
    for _ in range(n):
        license_ = LicenseFactory()
        EntitlementFactory(application=license_.application)


def make_access_requests(n, user):
    for _ in range(n):
        employee = _employee(manager=_employee())
        request = AccessRequestFactory(employee=employee, requested_by=UserFactory())
        ApprovalStep.objects.create(request=request, order=1, kind=ApprovalStepKind.MANAGER, approver=employee.manager)


def make_applications(n, user):
    for _ in range(n):
        ApplicationFactory(owner=_employee())


def make_delegations(n, user):
    for _ in range(n):
        ApprovalDelegation.objects.create(
            delegator=_employee(),
            delegate=_employee(),
            starts_on=datetime.date(2030, 1, 1),
            ends_on=datetime.date(2030, 1, 5),
            created_by=user,
        )


def make_employee_imports(n, user):
    for i in range(n):
        EmployeeImport.objects.create(created_by=UserFactory(), file_name=f"hr-{i}.csv", status="done")


def make_approval_steps(n, user):
    for _ in range(n):
        employee = _employee(manager=_employee())
        request = AccessRequestFactory(employee=employee, requested_by=UserFactory())
        ApprovalStep.objects.create(
            request=request,
            order=1,
            kind=ApprovalStepKind.MANAGER,
            approver=employee.manager,
            decided_by=user,
        )


def make_departments(n, user):
    """A chain of departments, each under the one made before it and headed by one of its own people."""
    for _ in range(n):
        department = DepartmentFactory(parent=Department.objects.order_by("-pk").first())
        department.head = EmployeeFactory(department=department, role=RoleFactory())
        department.save(update_fields=["head"])


def make_locations(n, user):
    LocationFactory.create_batch(n)


def make_roles(n, user):
    RoleFactory.create_batch(n)


def make_scim_connections(n, user):
    for _ in range(n):
        scim_connection_create(name=f"IdP {ScimConnection.objects.count() + 1}", acting_user=user)


def make_role_applications(n, user):
    for _ in range(n):
        RoleApplication.objects.create(role=RoleFactory(), application=ApplicationFactory(), access_level="user")


def make_checkouts(n, user):
    for _ in range(n):
        asset_check_out(asset=HardwareAssetFactory(), employee=_employee(), acting_user=user)


def make_asset_models(n, user):
    AssetModelFactory.create_batch(n)


def make_kit_items(n, user):
    for _ in range(n):
        RoleKitItem.objects.create(role=RoleFactory(), asset_model=AssetModelFactory())


def make_groups(n, user):
    for _ in range(n):
        Group.objects.create(name=f"Group {next(_counter)}")


def make_users(n, user):
    for _ in range(n):
        User.objects.create_user(username=f"listed-{next(_counter)}", email="listed@example.com")


def _queue_task(success: bool) -> None:
    now = timezone.now()
    Task.objects.create(
        id=uuid.uuid4().hex,
        name=f"task-{next(_counter)}",
        func="math.floor",
        group="listed",
        started=now,
        stopped=now,
        success=success,
        result="done" if success else "failed",
    )


def make_failures(n, user):
    for _ in range(n):
        _queue_task(success=False)


def make_successes(n, user):
    for _ in range(n):
        _queue_task(success=True)


def make_queued(n, user):
    for _ in range(n):
        name = f"queued-{next(_counter)}"
        payload = SignedPackage.dumps({"id": uuid.uuid4().hex, "name": name, "func": "math.floor", "args": (1,)})
        OrmQ.objects.create(key="default", payload=payload, lock=timezone.now())


def make_schedules(n, user):
    for _ in range(n):
        Schedule.objects.create(name=f"schedule-{next(_counter)}", func="math.floor", schedule_type=Schedule.HOURLY)


def make_change_requests(n, user):
    for _ in range(n):
        manager = _employee()
        ChangeRequest.objects.create(
            employee=_employee(manager=manager),
            kind="move",
            requested_by=manager,
            new_role=RoleFactory(),
            new_department=DepartmentFactory(),
            new_manager=_employee(),
            effective_date=datetime.date(2030, 1, 31),
            reason="Moves team.",
            decided_by=user,
        )


def _run(user):
    return run_start(
        employee=_employee(manager=_employee()),
        kind=ChecklistKind.LEAVE,
        event_date=datetime.date(2030, 1, 31),
        acting_user=user,
    )


def make_runs(n, user):
    for _ in range(n):
        _run(user)


def make_checklist_templates(n, user):
    for _ in range(n):
        template = ChecklistTemplate.objects.create(name=f"Template {next(_counter)}", kind=ChecklistKind.LEAVE)
        TaskTemplate.objects.create(checklist=template, key="collect-badge", title="Collect the badge")


def make_hardware_returns(n, user):
    for _ in range(n):
        run = _run(user)
        asset = HardwareAssetFactory()
        asset_check_out(asset=asset, employee=run.employee, acting_user=user)
        HardwareReturn.objects.create(
            run=run, employee=run.employee, asset=asset, due_date=datetime.date(2030, 2, 7), drop_off_location=None
        )


def make_tasks(n, user):
    for _ in range(n):
        run = _run(user)
        task_add(run=run, key="hand-over", title="Hand over", assignee_type="employee", assignee=run.employee.manager)


def make_task_templates(n, user):
    template = ChecklistTemplate.objects.create(name=f"Template {next(_counter)}", kind=ChecklistKind.LEAVE)
    for i in range(n):
        TaskTemplate.objects.create(checklist=template, key=f"step-{next(_counter)}-{i}", title=f"Step {i}")


def make_totp_devices(n, user):
    for _ in range(n):
        TOTPDevice.objects.create(user=User.objects.create_user(username=f"totp-{next(_counter)}"), confirmed=True)


def make_passkeys(n, user):
    for _ in range(n):
        number = next(_counter)
        WebAuthnCredential.objects.create(
            user=User.objects.create_user(username=f"passkey-{number}"),
            name=f"Passkey {number}",
            confirmed=True,
            credential_id=number.to_bytes(8, "big"),
            public_key=b"\x00",
            sign_count=0,
        )


def make_recovery_code_sets(n, user):
    for _ in range(n):
        recovery_codes_issue(user=User.objects.create_user(username=f"codes-{next(_counter)}"), acting_user=user)


def make_audit_events(n, user):
    """Events whose sentences name other rows (a person, an application, a run), each a different one."""
    for i in range(n):
        if i % 2:
            audit_record(
                action=AuditEvent.Action.STATUS_CHANGED,
                target=Group.objects.create(name=f"Audited {next(_counter)}"),
                acting_user=user,
            )
            continue
        entitlement = EntitlementFactory()
        audit_record(
            action=AuditEvent.Action.GRANT,
            target=entitlement,
            acting_user=user,
            detail={"employee": entitlement.employee_id, "application": entitlement.application_id, "level": "user"},
        )


def make_audit_checkpoints(n, user):
    for _ in range(n):
        AuditCheckpoint.objects.create(seq=next(_counter), hash="0" * 64, key_id="0" * 16, signature="0" * 128)


def make_chain_heads(n, user):
    # The chain uses row 1 only; more rows here are for the list's query count. Explicit ids: on
    # PostgreSQL row 1 is made with its id given, so the table's sequence may still hand out 1.
    for _ in range(n):
        last = AuditChainHead.objects.order_by("-pk").values_list("pk", flat=True).first() or 1
        AuditChainHead.objects.create(pk=last + 1, seq=0, hash="0" * 64)


def make_outbound_emails(n, user):
    for _ in range(n):
        email_send_on_commit(
            template="access_expiring",
            to=[f"reader{next(_counter)}@example.com"],
            context={"employee": {"first_name": "Reader"}, "entitlement": {}, "url": "http://portal/"},
        )


def make_usage_imports(n, user):
    for _ in range(n):
        UsageImport.objects.create(
            source=UsageSource.APP_CSV,
            application=ApplicationFactory(),
            file_name=f"usage-{next(_counter)}.csv",
            created_by=user,
        )


def make_unmatched_usage(n, user):
    now = timezone.now()
    for _ in range(n):
        k = next(_counter)
        UnmatchedUsage.objects.create(
            source=UsageSource.OKTA,
            app_name=f"Shadow {k}",
            app_key=f"shadow {k}",
            user=f"u{k}@example.com",
            user_key=f"u{k}@example.com",
            application=ApplicationFactory(),
            employee=EmployeeFactory(),
            reason=UnmatchedUsage.Reason.NO_ACCESS,
            count=1,
            first_seen=now,
            last_seen=now,
            last_import=UsageImport.objects.create(source=UsageSource.API),
        )


def make_event_subscribers(n, user):
    for _ in range(n):
        EventSubscriber.objects.create(
            name=f"Subscriber {next(_counter)}",
            url="https://hooks.example.com/",
            secret="s" * 20,
            events=["employee.left"],
        )


def make_event_deliveries(n, user):
    subscriber = EventSubscriber.objects.create(
        name=f"Subscriber {next(_counter)}", url="https://hooks.example.com/", secret="s" * 20, events=["employee.left"]
    )
    for _ in range(n):
        EventDelivery.objects.create(
            subscriber=EventSubscriber.objects.create(
                name=f"Subscriber {next(_counter)}", url="https://hooks.example.com/", secret="s" * 20
            )
            if next(_counter) % 2
            else subscriber,
            event_id=uuid.uuid4(),
            event_type="employee.left",
            payload={"event": "employee.left"},
        )


def make_api_tokens(n, user):
    for _ in range(n):
        holder = UserFactory(username=f"scripter{next(_counter)}")
        api_token_create(user=holder, name="Nightly sync", expires_in_days=None, acting_user=holder)


def make_idempotency_keys(n, user):
    for _ in range(n):
        IdempotencyKey.objects.create(
            user=user,
            key=f"key-{next(_counter)}",
            fingerprint="0" * 64,
            method="POST",
            path="/api/v1/tasks/1/skip/",
            response_status=200,
        )


def _review(n, user, prefix):
    """A launched access review over `n` new entitlements, each reviewed by its holder's manager (with a login)."""
    from accounts.models import AccessReview
    from accounts.services import reviews

    manager = EmployeeFactory(user=UserFactory())
    application = ApplicationFactory(name=f"{prefix} {next(_counter)}", owner=manager)
    for _ in range(n):
        EntitlementFactory(employee=_employee(manager), application=application)
    today = timezone.localdate()
    campaign = reviews.review_campaign_save(
        campaign=AccessReview(
            name=f"{prefix} review", starts_on=today, due_on=today + datetime.timedelta(days=7), recurrence="none"
        ),
        acting_user=user,
    )
    campaign.applications.set([application])
    return reviews.review_campaign_launch(campaign=campaign, acting_user=user)


def make_access_reviews(n, user):
    for _ in range(n):
        _review(1, user, "Reviewed")


def make_review_items(n, user):
    _review(n, user, "Items")


def _sod_rule(user, prefix="Rule"):
    """An approval rule between two new applications' levels, its control owner with a login."""
    from accounts.tests.helpers import payments_rule

    return payments_rule(
        control_owner=EmployeeFactory(user=UserFactory()), acting_user=user, name=f"{prefix} {next(_counter)}"
    )


def make_sod_rules(n, user):
    for _ in range(n):
        _sod_rule(user)


def make_sod_exceptions(n, user):
    from accounts.tests.helpers import breaking_with_exception

    for _ in range(n):
        rule = _sod_rule(user, "Excepted")
        breaking_with_exception(rule, employee=_employee(), approved_by=rule.control_owner, acting_user=user)


def make_admin_scopes(n, user):
    from accounts.models import AdminScope
    from accounts.services.scopes import admin_scope_save
    from portal.groups import IT_HELPDESK

    desk, _ = Group.objects.get_or_create(name=IT_HELPDESK)
    for _ in range(n):
        login = UserFactory(is_staff=True)
        login.groups.add(desk)
        admin_scope_save(
            scope=AdminScope(user=login),
            departments=[DepartmentFactory()],
            locations=[LocationFactory()],
            acting_user=user,
        )


# Rows for each registered model's changelist: `make(n, user)` adds n rows that the list shows.
ROW_BUILDERS = {
    "accounts.AdminScope": make_admin_scopes,
    "api.ApiToken": make_api_tokens,
    "api.IdempotencyKey": make_idempotency_keys,
    "accounts.AccessRequest": make_access_requests,
    "accounts.AccessReview": make_access_reviews,
    "accounts.ReviewItem": make_review_items,
    "accounts.Application": make_applications,
    "accounts.ApprovalDelegation": make_delegations,
    "accounts.ApprovalStep": make_approval_steps,
    "accounts.Department": make_departments,
    "accounts.Employee": make_employees,
    "accounts.EmployeeImport": make_employee_imports,
    "accounts.Entitlement": make_entitlements,
    "accounts.Location": make_locations,
    "accounts.Role": make_roles,
    "accounts.RoleApplication": make_role_applications,
    "accounts.ScimConnection": make_scim_connections,
    "accounts.SoDException": make_sod_exceptions,
    "accounts.SoDRule": make_sod_rules,
    "accounts.UnmatchedUsage": make_unmatched_usage,
    "accounts.UsageImport": make_usage_imports,
    "assets.AssetCheckout": make_checkouts,
    "assets.AssetModel": make_asset_models,
    "assets.HardwareAsset": make_assets,
    "assets.License": make_licenses,
    "assets.RoleKitItem": make_kit_items,
    "auth.Group": make_groups,
    "auth.User": make_users,
    "django_otp_webauthn.WebAuthnCredential": make_passkeys,
    "django_q.Failure": make_failures,
    "django_q.OrmQ": make_queued,
    "django_q.Schedule": make_schedules,
    "django_q.Success": make_successes,
    "offboarding.ChangeRequest": make_change_requests,
    "otp_totp.TOTPDevice": make_totp_devices,
    "offboarding.ChecklistRun": make_runs,
    "offboarding.ChecklistTemplate": make_checklist_templates,
    "offboarding.HardwareReturn": make_hardware_returns,
    "offboarding.Task": make_tasks,
    "offboarding.TaskTemplate": make_task_templates,
    "portal.AuditChainHead": make_chain_heads,
    "portal.AuditCheckpoint": make_audit_checkpoints,
    "portal.AuditEvent": make_audit_events,
    "portal.AuditEventPersonal": make_audit_events,  # each event writes its personal values
    "portal.EventDelivery": make_event_deliveries,
    "portal.EventSubscriber": make_event_subscribers,
    "portal.OutboundEmail": make_outbound_emails,
    "portal.RecoveryCodeDevice": make_recovery_code_sets,
}

REGISTERED = sorted(model._meta.label for model in admin.site._registry)


def changelist_name(label: str) -> str:
    app_label, model_name = label.lower().split(".")
    return f"admin:{app_label}_{model_name}_changelist"


def _get_and_count(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return len(ctx.captured_queries), response


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(username="root", email="root@example.com", password="x")


# django-q registers its queue table's admin only with the ORM broker (SQLite runs); with Redis
# (the PostgreSQL runs) it is not registered, and its builder and baseline wait for the next ORM run
# (so regenerate the baselines on SQLite).
ORM_BROKER_ONLY = {"django_q.OrmQ"}


def test_every_registered_model_has_a_row_builder():
    assert sorted(set(REGISTERED) - set(ROW_BUILDERS)) == [], "add a row builder for each to ROW_BUILDERS"
    unused = set(ROW_BUILDERS) - set(REGISTERED) - ORM_BROKER_ONLY
    assert sorted(unused) == [], "these builders name no registered model"


def test_every_changelist_has_a_baseline_and_every_baseline_a_changelist():
    BASELINES.check_complete(changelist_name(label) for label in sorted(set(REGISTERED) | ORM_BROKER_ONLY))


@pytest.mark.parametrize("label", REGISTERED)
def test_changelist_query_count_does_not_grow_with_rows(client, superuser, label):
    """The count at 5 and at 30 rows is the same, and each equals the recorded baseline."""
    if label not in ROW_BUILDERS:
        pytest.fail(f"no row builder for {label}: add one to ROW_BUILDERS")
    make_rows = ROW_BUILDERS[label]
    url = reverse(changelist_name(label))
    client.force_login(superuser)
    client.get(url)  # warm per-process caches (content types, permissions)
    before = client.get(url).context["cl"].result_count

    small, large = SIZES
    make_rows(small, superuser)
    at_small, response = _get_and_count(client, url)
    assert response.context["cl"].result_count == before + small, "the builder adds rows the list does not show"

    make_rows(large - small, superuser)
    at_large, response = _get_and_count(client, url)
    assert response.context["cl"].result_count == before + large

    BASELINES.check(changelist_name(label), {str(small): at_small, str(large): at_large})
    assert at_large == at_small, f"{label}: {at_small} queries at {small} rows, {at_large} at {large}"


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


@pytest.mark.parametrize(
    "label", ["accounts.Employee", "accounts.Entitlement", "assets.HardwareAsset", "offboarding.Task"]
)
def test_scoped_helpdesk_changelist_query_count_does_not_grow_with_rows(
    client, it_admin, scoped_helpdesk, scope_department, label
):
    """A scoped list is the same page with one more WHERE: its count is constant too (the scope is read once)."""
    url = reverse(changelist_name(label))
    client.force_login(scoped_helpdesk)
    client.get(url)  # warm per-process caches
    small, large = SIZES
    ROW_BUILDERS[label](small, it_admin)
    Employee.objects.update(department=scope_department)
    at_small, response = _get_and_count(client, url)
    shown = response.context["cl"].result_count
    assert shown >= small
    ROW_BUILDERS[label](large - small, it_admin)
    Employee.objects.update(department=scope_department)
    ROW_BUILDERS[label](2, it_admin)  # outside the scope: not shown
    at_large, response = _get_and_count(client, url)
    model = admin.site.get_model_admin(response.context["cl"].model).model
    assert shown + (large - small) <= response.context["cl"].result_count < model._default_manager.count()
    assert at_large == at_small, f"{label}: {at_small} queries at {small} rows, {at_large} at {large}"
