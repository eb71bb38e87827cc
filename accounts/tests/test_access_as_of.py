"""Access as of a date, from history: who had access to an application on a day, what access a person
had on a day; levels as they were that day; revocations counted until confirmed; downloads formula-safe;
only those who may view entitlements; a constant number of queries."""

import csv
import datetime
import io

import openpyxl
import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.access_history import access_on
from accounts.models import Entitlement, EntitlementStatus
from accounts.tests.factories import ApplicationFactory, EmployeeFactory

pytestmark = pytest.mark.django_db

URL = reverse("admin:accounts_entitlement_as_of")
DAY1, DAY2, DAY3, DAY4 = (datetime.date(2026, 3, d) for d in (2, 3, 4, 5))


def _at(day: datetime.date, hour=12):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(hour)))


def _dated(entitlement, day):
    """Date the version just written (as if it had been saved on `day`)."""
    history = Entitlement.history.model
    latest = history.objects.filter(id=entitlement.pk).order_by("-history_id").first()
    history.objects.filter(history_id=latest.history_id).update(history_date=_at(day))
    return entitlement


@pytest.fixture
def story(it_admin):
    """GitHub: Ada gets read on day 1, write on day 2, her revocation starts on day 3 and is confirmed on
    day 4. Grace gets GitHub on day 3. Ada also holds Slack from day 1."""
    github, slack = ApplicationFactory(name="GitHub"), ApplicationFactory(name="Slack")
    ada = EmployeeFactory(first_name="Ada", last_name="Lovelace", employee_number="=1+1", work_email="ada@example.com")
    grace = EmployeeFactory(first_name="Grace", last_name="Hopper", employee_number="E-2")
    ada_github = _dated(
        Entitlement.objects.create(
            employee=ada, application=github, level="read", status=EntitlementStatus.ACTIVE, granted_at=_at(DAY1)
        ),
        DAY1,
    )
    _dated(
        Entitlement.objects.create(
            employee=ada, application=slack, level="user", status=EntitlementStatus.ACTIVE, granted_at=_at(DAY1)
        ),
        DAY1,
    )
    ada_github.level = "write"
    ada_github.save()
    _dated(ada_github, DAY2)
    ada_github.status = EntitlementStatus.REVOKING
    ada_github.save()
    _dated(ada_github, DAY3)
    _dated(
        Entitlement.objects.create(
            employee=grace, application=github, level="read", status=EntitlementStatus.ACTIVE, granted_at=_at(DAY3)
        ),
        DAY3,
    )
    ada_github.status, ada_github.revoked_at = EntitlementStatus.REVOKED, _at(DAY4)
    ada_github.save()
    _dated(ada_github, DAY4)
    return github, slack, ada, grace


def _held(**kwargs):
    return [(v.employee.last_name, v.application.name, v.level, v.status) for v in access_on(**kwargs)]


def test_who_had_an_application_on_each_day_with_the_level_of_that_day(story):
    github, _, _, _ = story
    assert _held(day=DAY1 - datetime.timedelta(days=1), application=github) == []
    assert _held(day=DAY1, application=github) == [("Lovelace", "GitHub", "read", "active")]
    assert _held(day=DAY2, application=github) == [("Lovelace", "GitHub", "write", "active")]
    assert _held(day=DAY3, application=github) == [
        ("Hopper", "GitHub", "read", "active"),
        ("Lovelace", "GitHub", "write", "revoking"),  # not yet confirmed removed: still held
    ]
    assert _held(day=DAY4, application=github) == [("Hopper", "GitHub", "read", "active")]


def test_what_a_person_had_on_a_day(story):
    _, _, ada, grace = story
    assert _held(day=DAY2, employee=ada) == [
        ("Lovelace", "GitHub", "write", "active"),
        ("Lovelace", "Slack", "user", "active"),
    ]
    assert _held(day=DAY4, employee=ada) == [("Lovelace", "Slack", "user", "active")]
    assert _held(day=DAY2, employee=grace) == []


def test_the_page_answers_and_downloads_are_formula_safe(client, it_admin, story):
    github, _, ada, _ = story
    client.force_login(it_admin)
    page = client.get(URL, {"day": DAY3.isoformat(), "application": github.pk})
    assert page.status_code == 200
    text = page.content.decode()
    assert "2 entitlements held on 4 Mar 2026: GitHub" in text
    assert "Lovelace" in text and "Hopper" in text
    by_person = client.get(URL, {"day": DAY2.isoformat(), "person": "ADA@example.com"})
    assert "2 entitlements held on 3 Mar 2026: Ada Lovelace (=1+1)" in by_person.content.decode()

    download = client.get(URL, {"day": DAY3.isoformat(), "application": github.pk, "format": "csv"})
    assert download["Content-Disposition"] == 'attachment; filename="access-on-2026-03-04.csv"'
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["Application", "Level", "Employee number", "Name"]
    assert rows[2][:4] == ["GitHub", "write", "'=1+1", "Ada Lovelace"]  # a formula is written as text
    xlsx = client.get(URL, {"day": DAY3.isoformat(), "application": github.pk, "format": "xlsx"})
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[2][2] == "'=1+1" and sheet.cell(row=3, column=3).data_type == "s"
    assert len(values) == 3


@pytest.mark.parametrize(
    "query, message",
    [
        ({"day": "", "application": ""}, "This field is required."),
        ({"day": "2026-02-30", "person": "E-2"}, "Enter a valid date."),
        ({"day": "2999-01-01", "person": "E-2"}, "the history does not know the future"),
        ({"day": "2026-03-02"}, "Choose an application, a person, or both."),
        (
            {"day": "2026-03-02", "person": "nobody@example.com"},
            "No employee has the number or work email “nobody@example.com”.",
        ),
        ({"day": "2026-03-02", "application": "²"}, "Select a valid choice."),
        ({"day": "999999999-01-01", "person": "E-2"}, "Enter a valid date."),
    ],
)
def test_bad_questions_get_a_sentence_and_a_400(client, it_admin, story, query, message):
    client.force_login(it_admin)
    response = client.get(URL, query)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert client.get(URL, {**query, "format": "csv"}).status_code == 400  # no download of a bad question


def test_only_who_may_view_entitlements_gets_the_page(client, story, auditor, employee_user):
    client.force_login(auditor)
    assert client.get(URL, {"day": DAY1.isoformat(), "person": "E-2"}).status_code == 200
    client.force_login(employee_user)
    assert client.get(URL).status_code in (302, 403)


def test_an_unknown_format_is_a_404(client, it_admin, story):
    github = story[0]
    client.force_login(it_admin)
    assert client.get(URL, {"day": DAY1.isoformat(), "application": github.pk, "format": "pdf"}).status_code == 404


def test_queries_do_not_grow_with_the_answer(client, it_admin, story):
    github = story[0]
    client.force_login(it_admin)
    client.get(URL, {"day": DAY3.isoformat(), "application": github.pk})
    for _ in range(30):
        Entitlement.objects.create(
            employee=EmployeeFactory(), application=github, level="read", status=EntitlementStatus.ACTIVE
        )
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        client.get(URL, {"day": DAY1.isoformat(), "application": github.pk})
    with CaptureQueriesContext(connection) as large:
        response = client.get(URL, {"day": timezone.localdate().isoformat(), "application": github.pk})
    assert response.content.decode().count('data-label="Application"') == 31
    assert len(large) == len(small)
