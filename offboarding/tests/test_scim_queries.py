"""What one SCIM request costs in queries, pinned: a create (the person, their join run with the company's
join checklist) and a PATCH `active: false` (their leave run), the same in a company of 5 and of 300.

An identity provider's initial sync is thousands of creates in a row, and its deprovisioning one PATCH
per leaver: a query added to either path shows here first (the bench has the rates: `bench/scim.py`).
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Employee, EntitlementStatus
from accounts.scim.services import scim_connection_create
from accounts.tests.factories import ApplicationFactory, DepartmentFactory, EntitlementFactory
from accounts.tests.scim.conftest import Scim, user_body
from offboarding.models import ChecklistKind, ChecklistRun, Task
from offboarding.tests.factories import lifecycle_templates

pytestmark = pytest.mark.django_db

# Token; uniqueness (one query, on the lower-case indexes); department; person + history + audit; the
# person locked and their join runs looked for; join run + history; the join checklists with their
# scopes, tasks and dependencies (6 reads); the checklists' tasks and the core steps (one insert, one
# history insert, one of their dependencies); audit; the subscribers of employee.joined; the run's
# runnable tasks and queueing them; 6 savepoints of the test's transaction and the services' (50
# before: two uniqueness reads, full_clean's five, 5 queries per checklist task, the run read twice);
# the audit chain's 2 per audit event (the head locked, the event's personal values) for the 2 events.
CREATE_QUERIES = 36
# The same for a leave run, plus the person's end date (only what changed validated: the end date
# against the start date; with history), their live access (one insert of the revocations), the
# dependencies of the core steps (one insert), the answer read back (76 before: one insert and one
# un-queueing per core step that waits, 4 batches of core steps, every unique field checked again);
# the audit chain's 2 per audit event.
DEACTIVATE_QUERIES = 54


def company(size: int, department) -> None:
    """`size` people already in the company (the department the pushed users join among them)."""
    Employee.objects.bulk_create(
        [
            Employee(
                employee_number=f"C{size}-{n:05d}",
                first_name="Existing",
                last_name=f"Person{n:05d}",
                work_email=f"existing.{size}.{n}@example.com",
                start_date="2024-01-01",
                department=department if n % 2 else None,
            )
            for n in range(size)
        ]
    )


@pytest.fixture
def scim(client):
    lifecycle_templates()
    connection_, token = scim_connection_create(name="Entra ID", acting_user=None)
    scim = Scim(client, token)
    assert scim.get("Users", count="1").status_code == 200  # the token's last use, stamped once a minute
    return scim


def measured(call, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False), CaptureQueriesContext(connection) as queries:
        response = call()
    return response, len(queries)


@pytest.mark.parametrize("size", [5, 300])
def test_a_create_costs_the_same_queries_whatever_the_company_size(scim, size, django_capture_on_commit_callbacks):
    department = DepartmentFactory(name="Engineering")
    company(size, department)
    counts = []
    for n in range(2):  # the second too: nothing is cached by the first
        body = user_body(email=f"new.{n}@example.com", number=f"N{n}", enterprise={"department": "Engineering"})
        response, count = measured(lambda body=body: scim.post("Users", body), django_capture_on_commit_callbacks)
        assert response.status_code == 201, response.content
        counts.append(count)
        run = ChecklistRun.objects.get(employee_id=response.json()["id"], kind=ChecklistKind.JOIN)
        assert Task.objects.filter(run=run).count() > 10  # the join checklist's tasks, materialised
    assert Employee.objects.count() == size + 2
    assert counts == [CREATE_QUERIES, CREATE_QUERIES], counts


@pytest.mark.parametrize(("size", "held"), [(5, 1), (300, 6)])
def test_a_deactivation_costs_the_same_queries_whatever_the_company_size(
    scim, size, held, django_capture_on_commit_callbacks
):
    department = DepartmentFactory(name="Engineering")
    company(size, department)
    user = scim.post("Users", user_body(enterprise={"department": "Engineering"})).json()
    for _ in range(held):
        EntitlementFactory(
            employee_id=user["id"], application=ApplicationFactory(connector="manual"), status=EntitlementStatus.ACTIVE
        )
    response, count = measured(
        lambda: scim.patch(f"Users/{user['id']}", {"op": "Replace", "path": "active", "value": "False"}),
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 200 and response.json()["active"] is False, response.content
    run = ChecklistRun.objects.get(employee_id=user["id"], kind=ChecklistKind.LEAVE)
    assert run.tasks.filter(action="revoke_entitlement").count() == held
    assert count == DEACTIVATE_QUERIES, count
