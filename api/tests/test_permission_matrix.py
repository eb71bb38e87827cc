"""Permission matrix of the REST API: every endpoint, for anonymous, employee, manager, owner, helpdesk, a
helpdesk scoped to the Finance department, IT admin and auditor, with the same rules as the pages (see `api.access`).

- Reads: per audience, every list returns exactly the rows that audience may see (by name, below), each
  of them answers 200 on its detail, and a row outside answers 404 (as an unknown id does).
- Writes: per endpoint, each audience in turn, from the same starting state (a savepoint rolled back
  after each): the expected status, and the row it aims at changed only for the audience allowed to.
- `test_every_api_route_is_in_the_matrix` fails when an endpoint is added without rows here.
"""

from contextlib import contextmanager

import pytest
from django.db import transaction
from django.urls import get_resolver

from accounts.models import AccessRequest, Application, Department, Employee, Entitlement, Location, Role
from assets.models import AssetCheckout, HardwareAsset, License
from offboarding.models import ChecklistRun, Task

pytestmark = pytest.mark.django_db

AUDIENCES = ("anonymous", "employee", "manager", "owner", "helpdesk", "scoped_helpdesk", "it_admin", "auditor")
STAFF = ("helpdesk", "it_admin", "auditor")

# --- Reads: what each audience sees, by name -----------------------------------------------------


def _names(cast):
    """Resolve the names the table uses to primary keys of the seeded rows."""
    laptop = HardwareAsset.objects.get(asset_tag="LT-API-1")
    return {
        "employee": cast.employee.pk,
        "teammate": cast.teammate.pk,
        "manager": cast.manager.pk,
        "owner": cast.owner.pk,
        "engineering": cast.employee.department_id,
        "berlin": cast.employee.location_id,
        "engineer": cast.employee.role_id,
        "owner_location": cast.owner.location_id,
        "employee_github": Entitlement.objects.get(employee=cast.employee, application=cast.app).pk,
        "figma_request": AccessRequest.objects.get(employee=cast.employee, application=cast.owner_app).pk,
        "laptop": laptop.pk,
        "laptop_checkout": AssetCheckout.objects.get(asset=laptop).pk,
        "employee_join": ChecklistRun.objects.get(employee=cast.employee, kind="join").pk,
        "handbook": Task.objects.get(key="handbook").pk,
        # Finance: the scoped helpdesk's scope.
        "other_manager": cast.other_manager.pk,
        "other_employee": cast.other_employee.pk,
        "other_owner": cast.other_owner.pk,
        "other_payroll": Entitlement.objects.get(employee=cast.other_employee, application=cast.other_app).pk,
        "other_leave": ChecklistRun.objects.get(employee=cast.other_employee, kind="leave").pk,
        "wipe": Task.objects.get(key="wipe").pk,
        "collect": Task.objects.get(key="collect").pk,
    }


ALL = "all"
APPS_BUT_PAYROLL = "apps_but_payroll"
OWNER_APPS = "owner_apps"

READS = {
    # resource: (model, {audience: names seen}); staff but the scoped helpdesk see ALL.
    "employees": (
        Employee,
        {
            "employee": {"employee"},
            "manager": {"manager", "employee", "teammate"},
            "owner": {"owner"},
            "scoped_helpdesk": {"other_manager", "other_employee", "other_owner"},
        },
    ),
    "departments": (
        Department,
        {"employee": {"engineering"}, "manager": {"engineering"}, "owner": {"engineering"}, "scoped_helpdesk": ALL},
    ),
    "locations": (
        Location,
        {"employee": {"berlin"}, "manager": {"berlin"}, "owner": {"owner_location"}, "scoped_helpdesk": ALL},
    ),
    "roles": (Role, {"employee": {"engineer"}, "manager": {"engineer"}, "owner": set(), "scoped_helpdesk": ALL}),
    "applications": (
        Application,
        {"employee": APPS_BUT_PAYROLL, "manager": APPS_BUT_PAYROLL, "owner": APPS_BUT_PAYROLL, "scoped_helpdesk": ALL},
    ),
    "entitlements": (
        Entitlement,
        {
            "employee": {"employee_github"},
            "manager": {"employee_github"},
            "owner": {"employee_github"},
            "scoped_helpdesk": {"other_payroll"},
        },
    ),
    "access-requests": (
        AccessRequest,
        {"employee": {"figma_request"}, "manager": set(), "owner": {"figma_request"}, "scoped_helpdesk": set()},
    ),
    "hardware": (
        HardwareAsset,
        {"employee": {"laptop"}, "manager": {"laptop"}, "owner": set(), "scoped_helpdesk": set()},
    ),
    "checkouts": (
        AssetCheckout,
        {"employee": {"laptop_checkout"}, "manager": set(), "owner": set(), "scoped_helpdesk": set()},
    ),
    "licenses": (License, {"employee": set(), "manager": set(), "owner": set(), "scoped_helpdesk": ALL}),
    "checklist-runs": (
        ChecklistRun,
        {"employee": set(), "manager": {"employee_join"}, "owner": set(), "scoped_helpdesk": {"other_leave"}},
    ),
    "tasks": (
        Task,
        {"employee": {"handbook"}, "manager": set(), "owner": set(), "scoped_helpdesk": {"wipe", "collect"}},
    ),
}


def _expected_ids(model, seen, names, cast) -> set[int]:
    if seen == ALL:
        return set(model.objects.values_list("pk", flat=True))
    if seen == APPS_BUT_PAYROLL:
        return set(Application.objects.exclude(pk=cast.other_app.pk).values_list("pk", flat=True))
    return {names[name] for name in seen}


@pytest.mark.parametrize("audience", AUDIENCES)
def test_each_list_and_detail_shows_exactly_what_the_audience_may_see(seeded, api, audience):
    client = getattr(api, audience)
    names = _names(seeded)
    problems = []
    for resource, (model, table) in READS.items():
        listing = client.get(f"/api/v1/{resource}/", page_size=200)
        if audience == "anonymous":
            if listing.status_code != 401:
                problems.append(f"{resource}: anonymous got {listing.status_code}")
            first = model.objects.values_list("pk", flat=True).first()
            if first and client.get(f"/api/v1/{resource}/{first}/").status_code != 401:
                problems.append(f"{resource} detail: anonymous not 401")
            continue
        expected = _expected_ids(model, ALL if audience in STAFF else table[audience], names, seeded)
        got = {row["id"] for row in listing.json()["results"]} if listing.status_code == 200 else None
        if got != expected:
            problems.append(f"{resource}: {audience} saw {got}, expected {expected}")
        for pk in expected:
            if client.get(f"/api/v1/{resource}/{pk}/").status_code != 200:
                problems.append(f"{resource}/{pk}: {audience} not 200")
        outside = model.objects.exclude(pk__in=expected).values_list("pk", flat=True).first()
        if outside is not None:
            response = client.get(f"/api/v1/{resource}/{outside}/")
            if (response.status_code, response.json()) != (404, {"detail": "Not found."}):
                problems.append(f"{resource}/{outside} (not theirs): {audience} got {response.status_code}")
        unknown = client.get(f"/api/v1/{resource}/987654321/")
        if unknown.status_code != 404:
            problems.append(f"{resource}/987654321: {audience} got {unknown.status_code}")
    me = client.get("/api/v1/me/")
    if me.status_code != (401 if audience == "anonymous" else 200):
        problems.append(f"me: {audience} got {me.status_code}")
    assert not problems, "\n".join(problems)


def test_the_schema_and_docs_are_public_and_hold_no_data(api):
    for path in ("/api/v1/schema/", "/api/v1/docs/", "/api/v1/docs/?script="):
        assert api.anonymous.get(path).status_code == 200, path


# --- Writes: who may do what ---------------------------------------------------------------------


def _request_state(names):
    request = AccessRequest.objects.get(pk=names["figma_request"])
    return request.status, tuple(request.steps.values_list("status", "decided_by_id"))


def _asset_state(tag):
    return HardwareAsset.objects.filter(asset_tag=tag).values_list("status", "assigned_to_id").get()


def _task_state(key):
    return Task.objects.filter(key=key).values_list("status", "note").get()


WRITES = {
    # name: (path, body, state(names), {audience: status}); an audience with 2xx must change the state.
    "access-requests:create": (
        lambda n, c: "/api/v1/access-requests/",
        lambda n, c: {"application": c.free_app.pk, "level": "user", "justification": "Chat."},
        lambda n: AccessRequest.objects.count(),
        {
            "employee": 201,
            "manager": 201,
            "owner": 201,
            "helpdesk": 403,
            "scoped_helpdesk": 403,
            "it_admin": 403,
            "auditor": 403,
        },
    ),
    "access-requests:approve": (
        lambda n, c: f"/api/v1/access-requests/{n['figma_request']}/approve/",
        lambda n, c: {"comment": "ok"},
        _request_state,
        {
            "employee": 403,
            "manager": 404,
            "owner": 200,
            "helpdesk": 403,
            "scoped_helpdesk": 404,
            "it_admin": 403,
            "auditor": 403,
        },
    ),
    "access-requests:reject": (
        lambda n, c: f"/api/v1/access-requests/{n['figma_request']}/reject/",
        lambda n, c: {"comment": "no"},
        _request_state,
        {
            "employee": 403,
            "manager": 404,
            "owner": 200,
            "helpdesk": 403,
            "scoped_helpdesk": 404,
            "it_admin": 403,
            "auditor": 403,
        },
    ),
    "access-requests:cancel": (
        lambda n, c: f"/api/v1/access-requests/{n['figma_request']}/cancel/",
        lambda n, c: {},
        _request_state,
        {
            "employee": 200,
            "manager": 404,
            "owner": 403,
            "helpdesk": 403,
            "scoped_helpdesk": 404,
            "it_admin": 403,
            "auditor": 403,
        },
    ),
    "hardware:check-out": (
        lambda n, c: f"/api/v1/hardware/{HardwareAsset.objects.get(asset_tag='LT-API-STOCK').pk}/check-out/",
        lambda n, c: {"asset": HardwareAsset.objects.get(asset_tag="LT-API-STOCK").pk, "employee": c.teammate.pk},
        lambda n: _asset_state("LT-API-STOCK"),
        {
            "employee": 404,
            "manager": 404,
            "owner": 404,
            "helpdesk": 200,
            "scoped_helpdesk": 404,
            "it_admin": 200,
            "auditor": 403,
        },
    ),
    "hardware:check-in": (
        lambda n, c: f"/api/v1/hardware/{n['laptop']}/check-in/",
        lambda n, c: {"condition": "good"},
        lambda n: _asset_state("LT-API-1"),
        {
            "employee": 403,
            "manager": 403,
            "owner": 404,
            "helpdesk": 200,
            "scoped_helpdesk": 404,
            "it_admin": 200,
            "auditor": 403,
        },
    ),
    "checkouts:accept-terms": (
        lambda n, c: f"/api/v1/checkouts/{n['laptop_checkout']}/accept-terms/",
        lambda n, c: {},
        lambda n: AssetCheckout.objects.filter(pk=n["laptop_checkout"]).values_list("terms_accepted_at").get(),
        {
            "employee": 200,
            "manager": 404,
            "owner": 404,
            "helpdesk": 403,
            "scoped_helpdesk": 404,
            "it_admin": 403,
            "auditor": 403,
        },
    ),
    "tasks:retry": (
        lambda n, c: f"/api/v1/tasks/{Task.objects.get(key='wipe').pk}/retry/",
        lambda n, c: {"reason": "Phone is back online."},
        lambda n: _task_state("wipe"),
        {
            "employee": 404,
            "manager": 404,
            "owner": 404,
            "helpdesk": 200,
            "scoped_helpdesk": 200,
            "it_admin": 200,
            "auditor": 403,
        },
    ),
    "tasks:skip": (
        lambda n, c: f"/api/v1/tasks/{Task.objects.get(key='wipe').pk}/skip/",
        lambda n, c: {"reason": "Phone was destroyed."},
        lambda n: _task_state("wipe"),
        {
            "employee": 404,
            "manager": 404,
            "owner": 404,
            "helpdesk": 200,
            "scoped_helpdesk": 200,
            "it_admin": 200,
            "auditor": 403,
        },
    ),
    "tasks:complete": (
        lambda n, c: f"/api/v1/tasks/{n['handbook']}/complete/",
        lambda n, c: {"note": "Read it."},
        lambda n: _task_state("handbook"),
        {
            "employee": 200,
            "manager": 404,
            "owner": 404,
            "helpdesk": 200,
            "scoped_helpdesk": 404,
            "it_admin": 200,
            "auditor": 403,
        },
    ),
}


class _Rollback(Exception):
    pass


@contextmanager
def _rolled_back():
    try:
        with transaction.atomic():
            yield
            raise _Rollback
    except _Rollback:
        pass


@pytest.mark.parametrize("name", list(WRITES))
def test_each_write_is_allowed_to_exactly_its_audience(seeded, api, name):
    path_of, body_of, state_of, expected = WRITES[name]
    names = _names(seeded)
    problems = []
    for audience in AUDIENCES:
        with _rolled_back():
            before = state_of(names)
            response = getattr(api, audience).post(path_of(names, seeded), body_of(names, seeded))
            after = state_of(names)
            want = 401 if audience == "anonymous" else expected[audience]
            if response.status_code != want:
                problems.append(f"{audience}: {response.status_code} {response.content[:200]!r}, expected {want}")
            if (200 <= want < 300) != (before != after):
                problems.append(
                    f"{audience}: state {'unchanged' if before == after else 'changed'} ({before} → {after})"
                )
            if response.status_code >= 400 and not response.json().get("detail"):
                problems.append(f"{audience}: a refusal without a detail")
    assert not problems, "\n".join(problems)


# --- Completeness --------------------------------------------------------------------------------


def test_every_api_route_is_in_the_matrix():
    """Each router resource is in READS, and each POST action (router `@action`s and create) is in WRITES."""
    from api.urls import router

    covered_writes = {name.split(":")[0] + ":" + name.split(":")[1] for name in WRITES}
    missing = []
    for prefix, viewset, _basename in router.registry:
        if prefix not in READS:
            missing.append(f"{prefix} (reads)")
        if hasattr(viewset, "create") and f"{prefix}:create" not in covered_writes:
            missing.append(f"{prefix}:create")
        for extra in viewset.get_extra_actions():
            if f"{prefix}:{extra.url_path}" not in covered_writes:
                missing.append(f"{prefix}:{extra.url_path}")
    resolver = get_resolver()
    assert resolver.resolve("/api/v1/me/")  # MeView: covered in the reads test
    assert not missing, f"Add rows for: {missing}"


def test_scoped_helpdesk_cannot_check_out_to_someone_outside_its_scope(seeded, api):
    """An asset inside the scope (its holder-to-be is not): refused like an unknown id, nothing written."""
    from assets.tests.factories import HardwareAssetFactory

    desk = HardwareAssetFactory(asset_tag="LT-FIN-1", location=seeded.other_employee.location)
    from accounts.models import AdminScope

    AdminScope.objects.get(user=seeded.scoped_helpdesk).locations.add(desk.location)
    body = {"asset": desk.pk, "employee": seeded.employee.pk}  # Engineering: outside
    response = api.scoped_helpdesk.post(f"/api/v1/hardware/{desk.pk}/check-out/", body)
    assert (response.status_code, response.json()["detail"]) == (
        400,
        f"employee: No employee has the id {seeded.employee.pk}.",
    )
    assert _asset_state("LT-FIN-1") == ("in_stock", None)
    body["employee"] = seeded.other_employee.pk  # Finance: inside
    assert api.scoped_helpdesk.post(f"/api/v1/hardware/{desk.pk}/check-out/", body).status_code == 200
    assert _asset_state("LT-FIN-1") == ("assigned", seeded.other_employee.pk)
