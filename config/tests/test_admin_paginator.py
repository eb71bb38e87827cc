"""A real Portal changelist counts its whole table from the planner's estimate and a search exactly (PostgreSQL)."""

import pytest
from django.db import connection
from django.urls import reverse

from accounts.models import Role
from accounts.tests.factories import RoleFactory
from portal.admin import EstimatedCountPaginator

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="reltuples is PostgreSQL's"),
]


def analyze_roles(n: int) -> None:
    """`n` roles, with the planner's statistics taken (as autovacuum would), then 5 more it has not seen."""
    RoleFactory.create_batch(n)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(Role._meta.db_table)}")
    RoleFactory.create_batch(5)


def test_changelist_counts_the_whole_table_from_the_estimate_and_a_search_exactly(client, it_admin, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "threshold", 10)
    analyze_roles(30)
    client.force_login(it_admin)
    url = reverse("admin:accounts_role_changelist")
    assert client.get(url).context["cl"].result_count == 30
    assert client.get(url, {"q": "Role"}).context["cl"].result_count == 35
