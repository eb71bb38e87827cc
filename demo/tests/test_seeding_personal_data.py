"""The seeders' raw inserter writes personal data as a save would: encrypted, with its blind indexes."""

import datetime

from django.db import connection

from accounts.models import Employee
from accounts.selectors import employees_by_personal_email
from demo.seeding import RawInserter

EMAIL = "raw.private@home.example"
ADDRESS = "1 Raw Lane, York"


def _raw(table: str, pk: int) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT personal_email, personal_phone, home_address FROM {table} WHERE id = %s",  # noqa: S608
            [pk],
        )
        return cursor.fetchone()


def test_the_raw_inserter_encrypts_and_indexes(db):
    inserter = RawInserter(Employee, reason="test")
    pk = inserter.allocate()
    inserter.insert(
        [
            {
                "id": pk,
                "employee_number": "RAW0001",
                "first_name": "Raw",
                "last_name": "Row",
                "work_email": "raw0001@example.com",
                "start_date": datetime.date(2025, 1, 1),
                "personal_email": EMAIL,
                "home_address": ADDRESS,
            }
        ]
    )
    inserter.finish()
    for table in ("accounts_employee", "accounts_historicalemployee"):
        email, phone, address = _raw(table, pk)
        assert email.startswith("pf1:dev:") and address.startswith("pf1:dev:") and phone == ""
    assert Employee.objects.get(pk=pk).home_address == ADDRESS
    assert [e.pk for e in employees_by_personal_email(EMAIL)] == [pk]
