"""factory_boy factories for accounts models."""

import datetime

import factory
from django.contrib.auth import get_user_model

from accounts import models

DEMO_TEST_PASSWORD = "test-pass-123"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password(DEMO_TEST_PASSWORD)


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Location

    name = factory.Sequence(lambda n: f"Office {n}")
    code = factory.Sequence(lambda n: f"OFF-{n}")
    country = "DE"
    region = models.Region.EMEA
    city = "Berlin"


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Department

    name = factory.Sequence(lambda n: f"Department {n}")
    code = factory.Sequence(lambda n: f"D{n}")


class RoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Role

    name = factory.Sequence(lambda n: f"Role {n}")
    code = factory.Sequence(lambda n: f"role-{n}")


class EmployeeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Employee

    employee_number = factory.Sequence(lambda n: f"E{n:06d}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    work_email = factory.LazyAttribute(lambda o: f"{o.employee_number.lower()}@example.com")
    title = "Engineer"
    department = factory.SubFactory(DepartmentFactory)
    location = factory.SubFactory(LocationFactory)
    status = models.EmployeeStatus.ACTIVE
    start_date = datetime.date(2024, 1, 15)


class ApplicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Application

    name = factory.Sequence(lambda n: f"App {n}")
    access_levels = factory.LazyFunction(lambda: ["user", "admin"])
    approval_policy = models.ApprovalPolicy.MANAGER


class EntitlementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Entitlement

    employee = factory.SubFactory(EmployeeFactory)
    application = factory.SubFactory(ApplicationFactory)
    level = "user"
    status = models.EntitlementStatus.ACTIVE
    source = models.EntitlementSource.MANUAL
    granted_at = factory.LazyFunction(lambda: datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC))


class AccessRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.AccessRequest

    employee = factory.SubFactory(EmployeeFactory)
    application = factory.SubFactory(ApplicationFactory)
    level = "user"
    justification = "Needed for my project."


def admin_search_people() -> tuple:
    """Ada and Alan (active) and Grace (terminated): the employees the admin search and page tests look for."""
    ada = EmployeeFactory(
        first_name="Ada", last_name="Lovelace", employee_number="E100001", work_email="ada.lovelace@example.com"
    )
    alan = EmployeeFactory(
        first_name="Alan", last_name="Turing", employee_number="E100002", work_email="alan.turing@example.com"
    )
    grace = EmployeeFactory(
        first_name="Grace",
        last_name="Hopper",
        employee_number="E200003",
        work_email="grace@example.com",
        status=models.EmployeeStatus.TERMINATED,
    )
    return ada, alan, grace
