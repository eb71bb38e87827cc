"""Fixtures of the API tests: a token per audience of `cast` (plus an IT admin) and a client that sends it."""

import json
from types import SimpleNamespace

import pytest
from django.test import Client

from api.services import api_token_create


class ApiClient:
    """Calls the API as one token (or anonymously): `.get(path, **query)`, `.post(path, body, key=...)`."""

    def __init__(self, secret: str | None):
        self.client = Client()
        self.secret = secret

    def _headers(self, key=None, extra=None):
        headers = {}
        if self.secret:
            headers["Authorization"] = f"Bearer {self.secret}"
        if key is not None:
            headers["Idempotency-Key"] = key
        headers.update(extra or {})
        return headers

    def get(self, path, headers=None, **query):
        return self.client.get(path, query, headers=self._headers(extra=headers))

    def post(self, path, body=None, *, key=None, headers=None):
        return self.client.post(
            path,
            json.dumps(body if body is not None else {}),
            content_type="application/json",
            headers=self._headers(key, headers),
        )


def token_for(user, name="test") -> str:
    return api_token_create(user=user, name=name, expires_in_days=None, acting_user=user)[1]


@pytest.fixture
def api(cast, it_admin, groups):
    """`api.<audience>`: an `ApiClient` with a fresh token of that audience; `api.anonymous` has none.

    `scoped_helpdesk` is an IT helpdesk login limited to the Finance department (`other_manager`,
    `other_employee`, `other_owner`)."""
    from accounts.models import AdminScope
    from accounts.services.scopes import admin_scope_save
    from accounts.tests.factories import UserFactory

    cast.users["it_admin"] = it_admin
    scoped = UserFactory(username="scoped-helpdesk", is_staff=True)
    scoped.groups.add(groups["IT helpdesk"])
    admin_scope_save(
        scope=AdminScope(user=scoped), departments=[cast.other_employee.department], locations=[], acting_user=None
    )
    cast.users["scoped_helpdesk"] = cast.scoped_helpdesk = scoped
    clients = {name: ApiClient(token_for(user)) for name, user in cast.users.items()}
    clients["anonymous"] = ApiClient(None)
    return SimpleNamespace(**clients)


def seed_company(cast, *, extra_people: int = 0):
    """Rows of every kind the API lists, made through the services (or factories where the row has none):
    `employee` holds GitHub and a laptop (terms open), has a pending request for Figma (owner decides) and a
    manual task in their join run; a leave run of `other_employee` has one failed IT task and one pending.
    `extra_people` more reports of `manager`, each with access and a device (for the query-count tests)."""
    from accounts.models import EntitlementStatus
    from accounts.services import access_requests
    from accounts.tests.factories import EntitlementFactory, LocationFactory, RoleFactory
    from assets.services import asset_check_out
    from assets.tests.factories import HardwareAssetFactory, LicenseFactory
    from offboarding.engine import run_start, task_add
    from offboarding.models import Task, TaskStatus

    cast.other_app.requestable = False
    cast.other_app.save(update_fields=["requestable"])
    berlin = LocationFactory(name="Berlin HQ", code="BER-1")
    engineer = RoleFactory(name="Engineer", code="engineer")
    for person in (cast.employee, cast.teammate, cast.manager):
        person.location, person.role = berlin, engineer
        person.save(update_fields=["location", "role"])
    EntitlementFactory(employee=cast.employee, application=cast.app, level="read", status=EntitlementStatus.ACTIVE)
    EntitlementFactory(employee=cast.other_employee, application=cast.other_app, status=EntitlementStatus.ACTIVE)
    laptop = HardwareAssetFactory(asset_tag="LT-API-1")
    asset_check_out(asset=laptop, employee=cast.employee, acting_user=None, terms_accepted=False)
    HardwareAssetFactory(asset_tag="LT-API-STOCK")
    LicenseFactory(application=cast.app)
    access_requests.access_request_create(
        employee=cast.employee,
        application=cast.owner_app,
        level="user",
        justification="Design reviews.",
        acting_user=cast.employee.user,
    )
    today = timezone_today()
    join = run_start(employee=cast.employee, kind="join", event_date=today, acting_user=None)
    task_add(run=join, key="handbook", title="Read the handbook", assignee_type="employee", assignee=cast.employee)
    leave = run_start(employee=cast.other_employee, kind="leave", event_date=today, acting_user=None)
    failed = task_add(run=leave, key="wipe", title="Wipe the phone", assignee_type="it")
    Task.objects.filter(pk=failed.pk).update(status=TaskStatus.FAILED, last_error="Phone offline")
    task_add(run=leave, key="collect", title="Collect the badge", assignee_type="it")
    add_reports(cast, extra_people, location=berlin)


def add_reports(cast, count: int, *, location=None):
    """`count` more reports of `manager`, each with an entitlement, a device checked out, a license and a join run."""
    from accounts.models import EntitlementStatus
    from accounts.services import access_requests
    from accounts.tests.factories import EmployeeFactory, EntitlementFactory
    from assets.services import asset_check_out
    from assets.tests.factories import HardwareAssetFactory, LicenseFactory
    from offboarding.engine import run_start, task_add

    today = timezone_today()
    for i in range(count):
        report = EmployeeFactory(
            manager=cast.manager, department=cast.manager.department, **({"location": location} if location else {})
        )
        EntitlementFactory(employee=report, application=cast.free_app, status=EntitlementStatus.ACTIVE)
        device = HardwareAssetFactory(asset_tag=f"LT-X-{report.pk}-{i}")
        asset_check_out(asset=device, employee=report, acting_user=None, terms_accepted=True)
        LicenseFactory(application=cast.free_app)
        run = run_start(employee=report, kind="join", event_date=today, acting_user=None)
        task_add(run=run, key=f"intro-{report.pk}", title="Meet the team", assignee_type="it")
        access_requests.access_request_create(
            employee=report, application=cast.owner_app, level="user", justification="Design.", acting_user=None
        )


def timezone_today():
    from django.utils import timezone

    return timezone.localdate()


@pytest.fixture
def seeded(cast, api, mailoutbox):
    seed_company(cast)
    return cast
