"""Junk in a query string or a form never makes a server error: every admin changelist (search, each
filter parameter, date hierarchy, page, ordering) and every self-service parameter a view reads, fed
values a person or a crawler can type. One case per (page, parameter, value); each asserts status < 500.

The changelists' filter parameters are worked out from `list_filter` without a database (cases are
collected before one exists); `test_filter_parameters_are_the_ones_the_changelists_expose` checks
them against the filter specs Django builds, so a new filter cannot slip past the sweep. The
`__isnull` parameters are left out: Django reads any value there as a boolean.

The rows are made once per module, inside an outer transaction rolled back at the end (see `world`).
"""

import datetime
from types import SimpleNamespace

import pytest
from django.contrib import admin
from django.contrib.admin import filters as admin_filters
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import get_fields_from_path
from django.db import models, transaction
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from accounts.admin import DepartmentListFilter
from accounts.models import AccessReview, ApprovalPolicy, Employee
from accounts.services import access_requests, reviews
from accounts.tests.factories import (
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    EntitlementFactory,
    LocationFactory,
    UserFactory,
)
from assets.services import asset_check_out
from assets.tests.factories import HardwareAssetFactory, LicenseFactory
from offboarding.engine import run_start, task_add
from offboarding.flows import returns
from portal.admin import AuditDateRangeFilter
from portal.testing.assertions import nothing_written

JUNK = {
    "superscript-two": "²",
    "huge": "9" * 30,
    "negative": "-1",
    "float-overflow": "1e309",
    "nul": "\x00",
    "quote": "'",
    "long": "x" * 5000,
}


# --- Which parameters each changelist reads --------------------------------------------------------


def _field_params(model, path: str, filter_class=None) -> list[str]:
    field = get_fields_from_path(model, path)[-1]
    if filter_class is None:
        if field.is_relation:
            filter_class = admin_filters.RelatedFieldListFilter
        elif isinstance(field, models.DateField):
            filter_class = admin_filters.DateFieldListFilter
        elif field.choices or isinstance(field, models.BooleanField):
            filter_class = admin_filters.ChoicesFieldListFilter
        else:
            filter_class = admin_filters.AllValuesFieldListFilter
    if issubclass(filter_class, AuditDateRangeFilter):
        return [f"{path}__since", f"{path}__until"]
    if issubclass(filter_class, admin_filters.RelatedFieldListFilter):
        return [f"{path}__{field.target_field.name}__exact"]
    if issubclass(filter_class, admin_filters.DateFieldListFilter):
        return [f"{path}__gte", f"{path}__lt"]
    if issubclass(filter_class, admin_filters.EmptyFieldListFilter):
        return [f"{path}__isempty"]
    if issubclass(filter_class, admin_filters.AllValuesFieldListFilter):
        return [path]
    return [f"{path}__exact"]


def changelist_params(model, model_admin) -> list[str]:
    """The query parameters a changelist reads: search, each filter's (not `__isnull`), hierarchy, page, order."""
    params = ["q"] if model_admin.search_fields else []
    for entry in model_admin.list_filter:
        if isinstance(entry, (list, tuple)):
            params += _field_params(model, entry[0], entry[1])
        elif isinstance(entry, str):
            params += _field_params(model, entry)
        else:
            params.append(entry.parameter_name)
    if model_admin.date_hierarchy:
        params += [f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day")]
    return [*params, "p", "o"]


def _admin_url(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


ADMIN_CASES = [
    pytest.param(model, param, value, id=f"{model._meta.label}-{param}-{name}")
    for model, model_admin in admin.site._registry.items()
    for param in changelist_params(model, model_admin)
    for name, value in JUNK.items()
]

# Self-service: the query parameters the views read, and the fields of the forms that take an id or a date.
REVIEW_FILTERS = ("campaign", "application", "suggestion", "department", "q", "page")
SELF_SERVICE_GET = [
    ("access:request", lambda w: [], "employee", "application"),
    ("access:owned_application", lambda w: [w.app.pk], "owner", "page"),
    *(("access:reviews", lambda w: [], "manager", param) for param in REVIEW_FILTERS),
]
SELF_SERVICE_POST = [
    ("access:request", "", lambda w: [], "employee", {"application": "app", "level": "read", "end_date": "date"}),
    ("access:delegations", "", lambda w: [], "manager", {"delegate": "email", "starts_on": "date", "ends_on": "date"}),
    (
        "offboarding:change_request",
        ",move",
        lambda w: [w.employee.pk, "move"],
        "manager",
        {"new_manager": "email", "effective_date": "date"},
    ),
    ("offboarding:change_request", ",leave", lambda w: [w.employee.pk, "leave"], "manager", {"effective_date": "date"}),
    (
        "access:reviews_bulk",
        "",
        lambda w: [],
        "manager",
        {"decision": "keep", "scope": "filtered", "filters": "q=x", "items": "1", "comment": "ok"},
    ),
    (
        "access:review_item",
        "",
        lambda w: [w.review_item.pk],
        "manager",
        {"decision": "change_level", "new_level": "read", "comment": "ok"},
    ),
]

SELF_SERVICE_CASES = [
    pytest.param("GET", name, args, who, param, None, value, id=f"{name}[GET]-{param}-{junk}")
    for name, args, who, param in SELF_SERVICE_GET
    for junk, value in JUNK.items()
] + [
    pytest.param("POST", name, args, who, param, fields, value, id=f"{name}[POST{label}]-{param}-{junk}")
    for name, label, args, who, fields in SELF_SERVICE_POST
    for param in fields
    for junk, value in JUNK.items()
]


# --- The world, made once per module ------------------------------------------------------------


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """A superuser; an employee (with a manager) holding access, hardware, a request, a run with a task
    and an open return; an owner of two applications; a licence. Rolled back after the module."""
    with django_db_blocker.unblock(), transaction.atomic():
        today = timezone.localdate()
        department = DepartmentFactory(name="Engineering")
        location = LocationFactory(name="Berlin HQ")

        def person(username, **extra):
            user = UserFactory(username=username)
            return EmployeeFactory(user=user, work_email=f"{username}@example.com", department=department, **extra)

        manager = person("junk-manager", location=location)
        employee = person("junk-employee", manager=manager, location=location)
        owner = person("junk-owner")
        app = ApplicationFactory(
            name="GitHub",
            owner=owner,
            approval_policy=ApprovalPolicy.MANAGER_THEN_OWNER,
            access_levels=["read", "write"],
        )
        figma = ApplicationFactory(name="Figma", owner=owner, approval_policy=ApprovalPolicy.OWNER)
        EntitlementFactory(employee=employee, application=figma)
        pending = access_requests.access_request_create(
            employee=employee, application=app, level="read", justification="Review.", acting_user=employee.user
        )
        laptop = HardwareAssetFactory(asset_tag="LT-JUNK-1")
        asset_check_out(asset=laptop, employee=employee, acting_user=None, terms_accepted=True)
        returns.hardware_return_request(asset=laptop, acting_user=None)
        run = run_start(employee=employee, kind="join", event_date=today, acting_user=None)
        task_add(run=run, key="welcome", title="Read the handbook", assignee_type="employee", assignee=employee)
        LicenseFactory()
        campaign = reviews.review_campaign_save(
            campaign=AccessReview(name="Junk review", starts_on=today, due_on=today + datetime.timedelta(days=7)),
            acting_user=None,
        )
        campaign.applications.set([figma])
        reviews.review_campaign_launch(campaign=campaign, acting_user=None)
        superuser = UserFactory(username="junk-root", is_staff=True, is_superuser=True)
        yield SimpleNamespace(
            superuser=superuser,
            employee=employee,
            manager=manager,
            owner=owner,
            app=app,
            request=pending,
            review_item=campaign.items.get(),
            users={"employee": employee.user, "manager": manager.user, "owner": owner.user},
            today=today,
        )
        transaction.set_rollback(True)


# --- The sweep ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "param", "value"), ADMIN_CASES)
def test_admin_changelist_survives_junk(client, world, model, param, value):
    client.force_login(world.superuser)

    response = client.get(_admin_url(model), {param: value})

    assert response.status_code < 500, f"{model._meta.label} ?{param}={value[:40]!r}"


@pytest.mark.django_db
def test_a_page_number_of_thousands_of_digits_is_page_one_not_an_error(client, world):
    """Python's int() refuses a string of more than 4,300 digits: the page hint must not call it then."""
    client.force_login(world.superuser)
    for model in (Employee, AccessReview):
        response = client.get(_admin_url(model), {"p": "9" * 5000})
        assert response.status_code < 500, model._meta.label


def _post_data(world, fields: dict, param: str, value: str) -> dict:
    good = {
        "app": str(world.app.pk),
        "date": (world.today + datetime.timedelta(days=30)).isoformat(),
        "email": world.owner.work_email,
    }
    data = {name: good.get(kind, kind) for name, kind in fields.items()}
    data |= {"justification": "Junk sweep.", "reason": "Junk sweep."}
    return data | {param: value}


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "name", "args", "who", "param", "fields", "value"), SELF_SERVICE_CASES)
def test_self_service_survives_junk(client, world, method, name, args, who, param, fields, value):
    client.force_login(world.users[who])
    url = reverse(name, args=args(world))

    if method == "GET":
        response = client.get(url, {param: value})
    else:
        response = client.post(url, _post_data(world, fields, param, value))

    assert response.status_code < 500, f"{method} {url} {param}={value[:40]!r}"


@pytest.mark.django_db
def test_filter_parameters_are_the_ones_the_changelists_expose(world):
    request = RequestFactory().get("/")
    request.user = world.superuser
    for model, model_admin in admin.site._registry.items():
        changelist = model_admin.get_changelist_instance(request)
        exposed = {
            param
            for spec in changelist.filter_specs
            for param in spec.expected_parameters()
            if not param.endswith("__isnull")
        }
        swept = set(changelist_params(model, model_admin)) - {"q", "p", "o"}
        swept -= {f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day")}
        assert exposed <= swept, f"{model._meta.label}: filters the sweep misses"


# --- One test per root cause: what a person sees, and that nothing was written -------------------


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["²", "9" * 30])
def test_employee_department_filter_with_no_department_id_redirects_to_the_incorrect_lookup_page(client, world, value):
    client.force_login(world.superuser)
    url = reverse("admin:accounts_employee_changelist")

    with nothing_written():
        response = client.get(url, {"department__id__exact": value})

    assert response.status_code == 302
    assert response["Location"] == f"{url}?e=1"


@pytest.mark.django_db
def test_employee_department_filter_still_filters_by_a_real_id(client, world):
    client.force_login(world.superuser)

    response = client.get(
        reverse("admin:accounts_employee_changelist"), {"department__id__exact": world.employee.department_id}
    )

    assert response.status_code == 200
    assert world.employee in response.context["cl"].result_list


@pytest.mark.django_db
def test_access_request_search_for_a_non_ascii_digit_finds_nothing(client, world):
    client.force_login(world.superuser)

    with nothing_written():
        response = client.get(reverse("admin:accounts_accessrequest_changelist"), {"q": "²"})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


@pytest.mark.django_db
def test_access_request_search_by_number_still_finds_the_request(client, world):
    client.force_login(world.superuser)

    response = client.get(reverse("admin:accounts_accessrequest_changelist"), {"q": f"#{world.request.pk}"})

    assert list(response.context["cl"].result_list) == [world.request]


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["²", "9" * 30, "-1"])
def test_request_access_with_no_application_id_shows_the_form_with_nothing_chosen(client, world, value):
    client.force_login(world.employee.user)

    with nothing_written():
        response = client.get(reverse("access:request"), {"application": value})

    assert response.status_code == 200
    assert "application" not in response.context["form"].initial


@pytest.mark.django_db
def test_request_access_still_preselects_a_real_application(client, world):
    client.force_login(world.employee.user)

    response = client.get(reverse("access:request"), {"application": world.app.pk})

    assert response.context["form"].initial["application"] == world.app.pk


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["²", "٣", "9" * 30])
def test_department_filter_refuses_what_is_no_department_id_itself(world, value):
    request = RequestFactory().get("/", {"department__id__exact": value})
    request.user = world.superuser
    model_admin = admin.site._registry[Employee]
    department_filter = DepartmentListFilter(request, {"department__id__exact": [value]}, Employee, model_admin)

    assert department_filter.lookups(request, model_admin) == [(world.employee.department_id, "Engineering")]
    with pytest.raises(IncorrectLookupParameters, match="Unknown department"):
        department_filter.queryset(request, Employee.objects.all())
