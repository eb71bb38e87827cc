"""The admin paginator: the planner's estimate for whole big tables on PostgreSQL, the exact count otherwise.

Proved on Django's own `User` table; the estimate on a real changelist is in
`config/tests/test_admin_paginator.py`.
"""

import itertools

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count

from portal.admin import EstimatedCountPaginator, PortalModelAdmin

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="reltuples is PostgreSQL's")


_numbers = itertools.count()


def make_users(n: int) -> None:
    User.objects.bulk_create(User(username=f"user-{next(_numbers)}") for _ in range(n))


def analyze_users(n: int) -> None:
    """`n` users, with the planner's statistics taken (as autovacuum would), then 5 more it has not seen."""
    make_users(n)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(User._meta.db_table)}")
    make_users(5)


def count(queryset, django_assert_num_queries) -> int:
    with django_assert_num_queries(1):
        return EstimatedCountPaginator(queryset, 10).count


def test_portal_admins_use_it():
    assert PortalModelAdmin.paginator is EstimatedCountPaginator


def test_counts_exactly_below_the_threshold(django_assert_num_queries):
    make_users(3)
    assert count(User.objects.all(), django_assert_num_queries) == 3


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the fallback of the other databases")
def test_other_databases_always_count_exactly(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(EstimatedCountPaginator, "threshold", 0)
    make_users(3)
    assert count(User.objects.all(), django_assert_num_queries) == 3


@postgresql_only
def test_whole_big_table_takes_the_estimate(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(EstimatedCountPaginator, "threshold", 10)
    analyze_users(30)
    assert count(User.objects.all(), django_assert_num_queries) == 30  # the estimate, not the 35 there are
    assert count(User.objects.order_by("-username").select_related(), django_assert_num_queries) == 30


@postgresql_only
def test_estimate_only_above_the_threshold(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(EstimatedCountPaginator, "threshold", 30)
    analyze_users(30)
    assert count(User.objects.all(), django_assert_num_queries) == 35  # in the same single query


@postgresql_only
@pytest.mark.parametrize(
    "narrow",
    [
        lambda qs: qs.filter(username__startswith="user"),
        lambda qs: qs.exclude(pk=0),
        lambda qs: qs.distinct("username").order_by("username"),
        lambda qs: qs.values("username").annotate(n=Count("pk")).order_by("username"),
        lambda qs: qs.union(User.objects.all()).order_by("username"),
    ],
    ids=["filter", "exclude", "distinct", "group-by", "union"],
)
def test_narrowed_querysets_count_exactly(monkeypatch, django_assert_num_queries, narrow):
    monkeypatch.setattr(EstimatedCountPaginator, "threshold", 10)
    analyze_users(30)
    assert count(narrow(User.objects.all()), django_assert_num_queries) == 35
