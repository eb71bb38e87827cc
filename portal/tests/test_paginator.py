"""The admin paginator: the planner's estimate for whole big tables on PostgreSQL, the exact count otherwise."""

import pytest
from django.db import connection
from django.db.models import Count
from django.urls import reverse

from accounts.models import Role
from accounts.tests.factories import RoleFactory
from portal.admin import EstimatedCountPaginator, PortalModelAdmin

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="reltuples is PostgreSQL's")


def analyze_roles(n: int) -> None:
    """`n` roles, with the planner's statistics taken (as autovacuum would), then 5 more it has not seen."""
    RoleFactory.create_batch(n)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(Role._meta.db_table)}")
    RoleFactory.create_batch(5)


def count(queryset, django_assert_num_queries) -> int:
    with django_assert_num_queries(1):
        return EstimatedCountPaginator(queryset, 10).count


def test_portal_admins_use_it():
    assert PortalModelAdmin.paginator is EstimatedCountPaginator


def test_counts_exactly_below_the_threshold(django_assert_num_queries):
    RoleFactory.create_batch(3)
    assert count(Role.objects.all(), django_assert_num_queries) == 3


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the fallback of the other databases")
def test_other_databases_always_count_exactly(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(EstimatedCountPaginator, "threshold", 0)
    RoleFactory.create_batch(3)
    assert count(Role.objects.all(), django_assert_num_queries) == 3


@postgresql_only
def test_whole_big_table_takes_the_estimate(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(EstimatedCountPaginator, "threshold", 10)
    analyze_roles(30)
    assert count(Role.objects.all(), django_assert_num_queries) == 30  # the estimate, not the 35 there are
    assert count(Role.objects.order_by("-name").select_related(), django_assert_num_queries) == 30


@postgresql_only
def test_estimate_only_above_the_threshold(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(EstimatedCountPaginator, "threshold", 30)
    analyze_roles(30)
    assert count(Role.objects.all(), django_assert_num_queries) == 35  # in the same single query


@postgresql_only
@pytest.mark.parametrize(
    "narrow",
    [
        lambda qs: qs.filter(name__startswith="Role"),
        lambda qs: qs.exclude(pk=0),
        lambda qs: qs.distinct("name").order_by("name"),
        lambda qs: qs.values("code").annotate(n=Count("pk")).order_by("code"),
        lambda qs: qs.union(Role.objects.all()).order_by("name"),
    ],
    ids=["filter", "exclude", "distinct", "group-by", "union"],
)
def test_narrowed_querysets_count_exactly(monkeypatch, django_assert_num_queries, narrow):
    monkeypatch.setattr(EstimatedCountPaginator, "threshold", 10)
    analyze_roles(30)
    assert count(narrow(Role.objects.all()), django_assert_num_queries) == 35


@postgresql_only
def test_changelist_counts_the_whole_table_from_the_estimate_and_a_search_exactly(client, it_admin, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "threshold", 10)
    analyze_roles(30)
    client.force_login(it_admin)
    url = reverse("admin:accounts_role_changelist")
    assert client.get(url).context["cl"].result_count == 30
    assert client.get(url, {"q": "Role"}).context["cl"].result_count == 35
