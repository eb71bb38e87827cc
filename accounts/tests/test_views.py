"""Self-service access pages (`accounts.views`): the approvals inbox, a page at a time."""

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import views
from accounts.models import ApprovalPolicy, ApprovalStep
from accounts.tests.factories import ApplicationFactory
from accounts.tests.helpers import ask

INBOX = "/approvals/"


def _waiting_for_manager(cast, count: int) -> list[int]:
    """`count` steps waiting on the manager (the employee asks for `count` applications), each activated a
    minute after the previous one; returns their ids oldest first."""
    start = timezone.now() - datetime.timedelta(days=1)
    ids = []
    for i in range(count):
        app = ApplicationFactory(name=f"Inbox app {i:02d}", approval_policy=ApprovalPolicy.MANAGER)
        request = ask(cast, app)
        step = ApprovalStep.objects.get(request=request, approver=cast.manager)
        ApprovalStep.objects.filter(pk=step.pk).update(activated_at=start + datetime.timedelta(minutes=i))
        ids.append(step.pk)
    return ids


def _listed(response) -> list[int]:
    """The step ids the page links to for review, in page order."""
    return [int(pk) for pk in re.findall(r'href="/approvals/(\d+)/"', response.content.decode())]


@pytest.fixture
def two_per_page(monkeypatch):
    monkeypatch.setattr(views, "APPROVALS_PER_PAGE", 2)


def test_inbox_pages_through_every_waiting_step_oldest_first(client, cast, two_per_page):
    ids = _waiting_for_manager(cast, 5)
    client.force_login(cast.manager.user)

    pages = [client.get(INBOX, {"page": n}) for n in (1, 2, 3)]

    assert [r.status_code for r in pages] == [200, 200, 200]
    assert [_listed(r) for r in pages] == [ids[0:2], ids[2:4], ids[4:5]]
    first, last = (p.content.decode() for p in (pages[0], pages[-1]))
    assert "5 steps wait for your decision; 1–2 shown, oldest first." in first
    assert "Page 1 of 3" in first and 'href="?page=2" rel="next"' in first and 'rel="prev"' not in first
    assert "Page 3 of 3" in last and 'href="?page=2" rel="prev"' in last and 'rel="next"' not in last


def test_one_page_of_steps_shows_no_page_links(client, cast):
    ids = _waiting_for_manager(cast, 3)
    client.force_login(cast.manager.user)

    response = client.get(INBOX)

    assert _listed(response) == ids
    html = response.content.decode()
    assert "3 steps wait for your decision." in html
    assert 'class="pagination"' not in html


@pytest.mark.parametrize(
    ("page", "shows"),
    [
        ("99", "last"),  # past the end: the last page
        ("0", "last"),
        ("abc", "first"),  # not a page number: the first page
        ("²", "first"),  # a digit to str.isdigit() that int() refuses
        ("-1", "last"),
        ("1.5", "first"),
        ("", "first"),
        ("9" * 40, "last"),
    ],
)
def test_a_page_out_of_range_or_not_a_number_answers_200_with_a_real_page(client, cast, two_per_page, page, shows):
    ids = _waiting_for_manager(cast, 3)
    client.force_login(cast.manager.user)

    response = client.get(INBOX, {"page": page})

    assert response.status_code == 200
    assert _listed(response) == (ids[0:2] if shows == "first" else ids[2:3])


def test_the_inbox_lists_only_steps_the_viewer_decides(client, cast, two_per_page):
    _waiting_for_manager(cast, 3)  # the manager's; the other manager has none
    client.force_login(cast.other_manager.user)

    response = client.get(INBOX, {"page": 2})

    assert response.status_code == 200
    assert _listed(response) == []
    assert "Nothing is waiting for your approval." in response.content.decode()


def test_every_page_costs_the_same_number_of_queries(client, cast, two_per_page):
    _waiting_for_manager(cast, 7)
    client.force_login(cast.manager.user)
    client.get(INBOX)  # session and permission caches warm

    counts = []
    for page in (1, 2, 4, 99):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(INBOX, {"page": page}).status_code == 200
        counts.append(len(captured))

    assert len(set(counts)) == 1, counts
