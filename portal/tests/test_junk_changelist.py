"""Junk in a changelist's query string is answered like a bad lookup (`UnreadableQueryMixin`), and
`parse_id` reads only ids an integer primary key can hold."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from portal.forms import parse_id
from portal.testing.assertions import nothing_written

HUGE = "9" * 30


@pytest.fixture
def superuser_client(client, db):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "x"))
    return client


@pytest.mark.parametrize("param", ["created_at__year", "created_at__month", "created_at__day"])
def test_a_date_hierarchy_value_too_big_for_a_date_redirects_to_the_incorrect_lookup_page(superuser_client, param):
    url = reverse("admin:portal_auditevent_changelist")
    query = {"created_at__year": "2025", "created_at__month": "6", param: HUGE}

    with nothing_written():
        response = superuser_client.get(url, query)

    assert response.status_code == 302
    assert response["Location"] == f"{url}?e=1"
    assert superuser_client.get(response["Location"]).status_code == 200


@pytest.mark.parametrize("value", [HUGE, "²"])
def test_a_date_filter_value_that_is_no_date_redirects_to_the_incorrect_lookup_page(superuser_client, value):
    url = reverse("admin:portal_auditevent_changelist")

    with nothing_written():
        response = superuser_client.get(url, {"created_at__gte": value})

    assert response.status_code == 302
    assert response["Location"] == f"{url}?e=1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", 12),
        ("0", 0),
        ("9" * 18, int("9" * 18)),
        ("9" * 19, None),
        ("²", None),
        ("٣", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1\n", None),
        ("1e3", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_id_reads_only_ascii_digits_that_fit_a_primary_key(value, expected):
    assert parse_id(value) == expected


@pytest.mark.parametrize("query", [{"q": "a\x00b"}, {"x\x00": "1"}], ids=["in-a-value", "in-a-key"])
def test_a_nul_character_in_the_query_string_is_refused_with_its_reason(client, db, query):
    from portal.middleware import NUL_REFUSED
    from portal.testing.assertions import nothing_written

    with nothing_written():
        response = client.get("/login/", query)

    assert response.status_code == 400
    assert response.content.decode() == NUL_REFUSED


def test_a_query_string_without_nul_goes_through(client, db):
    assert client.get("/login/", {"q": "plain"}).status_code == 200
