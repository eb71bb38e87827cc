"""The admin paginator: the planner's estimate for whole big tables on PostgreSQL, the exact count otherwise;
a page read through the ids of its rows, so that only those rows are joined.

Proved on Django's own `User` table; the estimate on a real changelist is in
`config/tests/test_admin_paginator.py`.
"""

import itertools

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from portal.admin import ChangelistPaginator, EstimatedCountPaginator, PortalModelAdmin

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
    assert issubclass(ChangelistPaginator, EstimatedCountPaginator)  # what a search page may choose


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


# --- A page through its ids -------------------------------------------------------------------------


def _page(queryset, number, per_page=4):
    """The rows of page `number` (usernames, as listed) and the SQL of the one query that read them."""
    page = ChangelistPaginator(queryset, per_page).page(number)
    with CaptureQueriesContext(connection) as captured:
        rows = [user.username for user in page.object_list]
    assert len(captured) == 1, [q["sql"] for q in captured]
    return rows, captured[0]["sql"]


def test_every_page_has_the_rows_plain_slicing_gives_in_the_same_order():
    make_users(11)
    every_third = list(User.objects.order_by("pk").values_list("pk", flat=True))[::3]
    User.objects.filter(pk__in=every_third).update(first_name="b")  # an order unlike the ids' order
    queryset = User.objects.select_related(None).order_by("first_name", "-username", "id")
    expected = [user.username for user in queryset.all()]

    pages = [_page(queryset, number)[0] for number in (1, 2, 3)]

    assert pages[0] + pages[1] + pages[2] == expected
    assert [len(rows) for rows in pages] == [4, 4, 3]


def test_a_page_sorts_and_cuts_ids_in_a_subquery_and_joins_only_its_rows():
    make_users(6)
    queryset = User.objects.filter(username__startswith="user-").prefetch_related(None).order_by("username")
    joined = queryset.annotate(groups_seen=Count("groups"))  # GROUP BY: still paged through ids

    rows, sql = _page(queryset, 2)

    assert rows == [user.username for user in queryset.all()][4:8]
    assert "IN (SELECT" in sql.upper() and "LIMIT 2 OFFSET 4" in sql.upper(), sql
    assert sql.upper().rstrip().endswith(("ASC", "DESC")), "the outer query keeps the order, not the cut"
    assert _page(joined, 1)[0] == [user.username for user in queryset.all()][:4]


@pytest.mark.parametrize("kind", ["distinct", "unordered"])
def test_distinct_or_unordered_lists_are_paged_as_django_does(kind):
    make_users(6)
    queryset = User.objects.filter(username__startswith="user-")
    queryset = queryset.order_by("username").distinct() if kind == "distinct" else queryset.order_by()

    rows, sql = _page(queryset, 1) if kind == "distinct" else (None, None)
    if kind == "distinct":
        assert "IN (SELECT" not in sql.upper()
        assert rows == [user.username for user in queryset.all()][:4]
    else:
        page = ChangelistPaginator(queryset, 4).page(1)
        assert "IN (SELECT" not in str(page.object_list.query).upper()


# --- A count that stops at its cap ------------------------------------------------------------------


def _capped(queryset, django_assert_num_queries, *, per_page=2, page_hint=1):
    paginator = EstimatedCountPaginator(queryset, per_page)
    paginator.page_hint = page_hint
    with CaptureQueriesContext(connection) as captured:
        counted = paginator.count
    assert len(captured) == 1
    return paginator, counted, captured[0]["sql"]


def test_a_filtered_count_stops_past_its_cap_unsorted(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 25)
    make_users(40)
    queryset = User.objects.filter(username__startswith="user-").order_by("username")

    paginator, counted, sql = _capped(queryset, django_assert_num_queries)

    assert (counted, paginator.count_is_lower_bound, paginator.count_limit) == (26, True, 25)
    assert "LIMIT 26" in sql.upper() and "ORDER BY" not in sql.upper(), sql
    assert paginator.num_pages == 13 and [u.username for u in paginator.page(13).object_list] == [
        u.username for u in queryset[24:26]
    ]


def test_a_filtered_count_below_its_cap_is_exact(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 25)
    make_users(25)
    paginator, counted, _sql = _capped(User.objects.filter(username__startswith="user-"), django_assert_num_queries)
    assert (counted, paginator.count_is_lower_bound) == (25, False)


def test_the_cap_reaches_ten_pages_past_the_page_asked_for(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 4)
    make_users(60)
    queryset = User.objects.filter(username__startswith="user-").order_by("username")

    paginator, counted, _sql = _capped(queryset, django_assert_num_queries, page_hint=15)

    assert (counted, paginator.count_limit, paginator.count_is_lower_bound) == (51, 50, True)  # (15 + 10) x 2
    assert len(paginator.page(25).object_list) == 2  # the page asked for and the ten after it are there
    _paginator, counted, _sql = _capped(queryset, django_assert_num_queries, page_hint=10**30)  # junk: capped
    assert counted == 60


@postgresql_only
def test_on_postgresql_the_ids_are_sorted_against_the_index_order_in_the_same_order():
    make_users(9)
    queryset = User.objects.filter(username__startswith="user-").order_by("first_name", "-username", "id")

    rows, sql = _page(queryset, 2)

    assert rows == [user.username for user in queryset.all()][4:8]
    inner = sql.upper().split("IN (SELECT", 1)[1]
    assert '"FIRST_NAME" ASC NULLS FIRST' in inner and '"USERNAME" DESC NULLS LAST' in inner, sql
    assert "NULLS" not in sql.upper().rsplit(")", 1)[1], "the outer query keeps the plain order"


@postgresql_only
def test_a_nullable_or_related_ordering_is_left_as_it_is():
    make_users(6)
    for ordering in (("last_login", "id"), ("groups__name", "id")):
        queryset = User.objects.filter(username__startswith="user-").order_by(*ordering)
        _rows, sql = _page(queryset, 1)
        assert "NULLS" not in sql.upper(), sql
