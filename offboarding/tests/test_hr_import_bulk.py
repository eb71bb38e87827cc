"""An HR import's bulk writes equal the one-by-one services, field by field.

`employee_import_apply` writes people, their history, audit events, join runs, tasks, task history,
dependencies, subscriber deliveries and queued work with bulk inserts (`portal.bulk`). The same file
is imported in bulk, snapshotted and rolled back, then the same people are created one by one
through `employee_create`, `audit_record` and `joiner_start` (as in an admin request); both
snapshots must be equal in every column but ids and timestamps (ids are replaced by stable keys:
employee number, task key).
"""

import datetime

import pytest
from django.db import IntegrityError, transaction
from django.test import RequestFactory
from django.utils import timezone
from simple_history.models import HistoricalRecords

from accounts.models import Employee
from accounts.services.employees import employee_create
from accounts.services.hr_import import employee_import_apply, employee_import_read
from accounts.tests.factories import DepartmentFactory, EmployeeFactory, LocationFactory, RoleFactory
from offboarding.flows import joiner
from offboarding.models import Assignee, ChecklistKind, ChecklistRun, Task
from offboarding.tests.factories import ChecklistTemplateFactory, TaskTemplateFactory
from portal.audit import audit_record
from portal.models import AuditEvent, EventDelivery, EventSubscriber, EventType

pytestmark = pytest.mark.django_db

# ids and timestamps; an audit event's place in the hash chain (its seq and hashes cover its time) and
# its salted commitments (a fresh salt each time: the values themselves are compared instead)
SKIPPED = {"id", "history_id", "created_at", "updated_at", "history_date", "seq", "prev_hash", "hash"} | {
    "actor_commitment",
    "target_commitment",
    "detail_commitment",
}
CLOSE = datetime.timedelta(minutes=5)  # other datetimes (due, queued) are compared to within this


class _RolledBack(Exception):
    pass


@pytest.fixture
def company(it_admin):
    eng = DepartmentFactory(code="ENG", name="Engineering")
    DepartmentFactory(code="FIN", name="Finance")
    LocationFactory(code="BER-1", name="Berlin HQ")
    RoleFactory(code="dev", name="Developer")
    onboarding = ChecklistTemplateFactory(name="Onboarding", kind=ChecklistKind.JOIN)
    welcome = TaskTemplateFactory(checklist=onboarding, key="welcome", assignee=Assignee.MANAGER, due_offset_days=-2)
    buddy = TaskTemplateFactory(
        checklist=onboarding, key="buddy", assignee=Assignee.EMPLOYEE, due_offset_days=1, params={"note": "x"}
    )
    buddy.depends_on.add(welcome)
    TaskTemplateFactory(
        checklist=onboarding, key="kit", assignee=Assignee.SYSTEM, action="reserve_kit", due_offset_days=-10
    )
    finance = ChecklistTemplateFactory(name="Finance only", kind=ChecklistKind.JOIN)
    finance.departments.add(DepartmentFactory(code="OPS", name="Operations"))
    TaskTemplateFactory(checklist=finance, key="finance")
    EmployeeFactory(employee_number="M001", work_email="mia@example.com", department=eng)
    EventSubscriber.objects.create(
        url="https://hooks.example.com/portal", secret="s" * 32, events=[EventType.EMPLOYEE_JOINED], active=True
    )


def hr_file() -> bytes:
    """Five people: managers later in the file, one reporting to someone in Portal, past and future starts."""
    past = (timezone.localdate() - datetime.timedelta(days=3)).isoformat()
    future = (timezone.localdate() + datetime.timedelta(days=40)).isoformat()
    lines = [
        "Employee number,First name,Last name,Preferred name,Work email,Job title,Department,Location,Manager,"
        "Role,Employment type,Start date,End date",
        f"B003,Cleo,Chen,,cleo@example.com,Analyst,Finance,BER-1,B002,,Contractor,{future},2030-01-31",
        f"B002,Bo,Berg,Bobby,bo@example.com,Lead,ENG,Berlin HQ,B001,dev,,{past},",
        f"B001,Ann,Alder,,ann@example.com,Head,Engineering,BER-1,M001,Developer,Full-time,{past},",
        f"B004,Dan,Dahl,,dan@example.com,,Operations,,B001,dev,Part-time,{future},",
        f"B005,Eve,Ek,,eve@example.com,Engineer,ENG,BER-1,,,Intern,{past},",
    ]
    return ("\n".join(lines) + "\n").encode()


# --- Snapshots: every column but ids and timestamps, ids replaced by stable keys ---------------------


def _keys() -> dict:
    keys = {}
    for pk, number in Employee.objects.values_list("pk", "employee_number"):
        keys[(Employee, pk)] = number
    for pk, number, kind in ChecklistRun.objects.values_list("pk", "employee__employee_number", "kind"):
        keys[(ChecklistRun, pk)] = f"{kind} run of {number}"
    for pk, number, key in Task.objects.values_list("pk", "run__employee__employee_number", "key"):
        keys[(Task, pk)] = f"{number}/{key}"
    return keys


def _row(obj, keys: dict) -> dict:
    opts = obj._meta
    base = getattr(type(obj), "instance_type", None)  # a historical model: its `id` is the base row's
    out = {}
    for field in opts.concrete_fields:
        value = getattr(obj, field.attname)
        if field.attname == "id" and base is not None:
            out["id"] = keys.get((base, value), value)
            continue
        if field.attname in SKIPPED:
            continue
        if field.is_relation and value is not None:
            value = keys.get((field.related_model, value), value)
        out[field.attname] = value
    return out


def _rows(queryset, keys: dict, sort_by) -> list[dict]:
    return sorted((_row(obj, keys) for obj in queryset), key=lambda row: [str(row.get(k)) for k in sort_by])


def snapshot() -> dict:
    keys = _keys()
    people = Employee.objects.filter(employee_number__startswith="B")
    runs = ChecklistRun.objects.filter(employee__in=people)
    tasks = Task.objects.filter(run__in=runs)
    events = []
    for event in AuditEvent.objects.exclude(target_type="portal.EventSubscriber"):
        row = _row(event, keys)
        # The readable values are kept beside the chained row (`AuditEventPersonal`), read through the event.
        row.update(actor_repr=event.actor_repr, target_repr=event.target_repr, detail=event.detail)
        model = {"accounts.Employee": Employee, "offboarding.ChecklistRun": ChecklistRun}.get(event.target_type)
        row["target_id"] = keys.get((model, int(event.target_id)), event.target_id)
        if "employee" in row["detail"]:
            row["detail"] = {**row["detail"], "employee": keys[(Employee, row["detail"]["employee"])]}
        events.append(row)
    deliveries = []
    for delivery in EventDelivery.objects.all():
        data = dict(delivery.payload["data"])
        data["run"] = keys[(ChecklistRun, data["run"])]
        deliveries.append((delivery.event_type, delivery.status, delivery.attempts, data))
    return {
        "employees": _rows(people, keys, ["employee_number"]),
        "employee history": _rows(Employee.history.filter(employee_number__startswith="B"), keys, ["id"]),
        "audit events": sorted(events, key=lambda row: (row["action"], str(row["target_id"]))),
        "runs": _rows(runs, keys, ["employee_id"]),
        "run history": _rows(ChecklistRun.history.filter(employee__in=people), keys, ["id"]),
        "tasks": _rows(tasks, keys, ["run_id", "key"]),
        "task history": _rows(Task.history.filter(run__in=runs), keys, ["id", "history_type", "status"]),
        "dependencies": sorted(
            (keys[(Task, a)], keys[(Task, b)])
            for a, b in Task.depends_on.through.objects.filter(from_task__in=tasks).values_list(
                "from_task_id", "to_task_id"
            )
        ),
        "event deliveries": sorted(deliveries, key=lambda d: d[3]["employee_number"]),
    }


def queued(callbacks) -> list[tuple]:
    """What the on-commit callbacks enqueue, one (task path, stable key) per id, however they are grouped."""
    keys = _keys()
    out = []
    for callback in callbacks:
        cells = dict(zip(callback.__code__.co_freevars, (c.cell_contents for c in callback.__closure__), strict=True))
        path = cells["func_path"]
        for pk in cells["ids"]:
            if path == "offboarding.tasks.task_execute":
                out.append((path, keys[(Task, pk)]))
            elif path == "portal.tasks.event_deliver":
                out.append((path, EventDelivery.objects.get(pk=pk).payload["data"]["employee_number"]))
            else:
                out.append((path, pk))
    return sorted(out)


def _same(bulk, one, where="") -> list[str]:
    """Where two snapshots differ (datetimes within CLOSE count as equal)."""
    if isinstance(bulk, dict) and isinstance(one, dict):
        diffs = [f"{where}.{k}: only in {'bulk' if k in bulk else 'one by one'}" for k in set(bulk) ^ set(one)]
        for key in bulk.keys() & one.keys():
            diffs += _same(bulk[key], one[key], f"{where}.{key}")
        return diffs
    if isinstance(bulk, list | tuple) and isinstance(one, list | tuple):
        if len(bulk) != len(one):
            return [f"{where}: {len(bulk)} in bulk, {len(one)} one by one"]
        return [d for i, (a, b) in enumerate(zip(bulk, one, strict=True)) for d in _same(a, b, f"{where}[{i}]")]
    if isinstance(bulk, datetime.datetime) and isinstance(one, datetime.datetime):
        return [] if abs(bulk - one) < CLOSE else [f"{where}: {bulk} in bulk, {one} one by one"]
    return [] if bulk == one else [f"{where}: {bulk!r} in bulk, {one!r} one by one"]


def _in_rollback(write, django_capture_on_commit_callbacks):
    result = {}
    try:
        with transaction.atomic():
            with django_capture_on_commit_callbacks() as callbacks:
                write()
            result = {"rows": snapshot(), "queued": queued(callbacks)}
            raise _RolledBack
    except _RolledBack:
        pass
    assert not Employee.objects.filter(employee_number__startswith="B").exists()
    return result


def test_bulk_import_writes_what_the_services_write_one_by_one(company, it_admin, django_capture_on_commit_callbacks):
    _, plan = employee_import_read(data=hr_file(), file_name="people.csv", encoding="auto", date_format="iso")
    assert plan.ok, [str(p) for p in plan.problems]

    def bulk():
        employee_import_apply(plan=plan, acting_user=it_admin, file_name="people.csv")

    def one_by_one():
        # As IT adds people in the admin: in a request, where simple-history names the user on the rows
        # the engine writes without one (the tasks); the bulk path names the importer on all of them.
        request = RequestFactory().post("/admin/")
        request.user = it_admin
        HistoricalRecords.context.request = request
        try:
            _create_one_by_one()
        finally:
            del HistoricalRecords.context.request

    def _create_one_by_one():
        made: dict[str, Employee] = {}
        for row in plan.rows:  # managers first, as the plan orders them
            employee = Employee(**row.values)
            ref = row.manager_ref
            employee.manager = None if ref is None else (made.get(ref[1]) or Employee.objects.get(pk=ref[1]))
            employee_create(employee=employee, acting_user=it_admin, via="import")
            audit_record(
                action=AuditEvent.Action.IMPORT,
                target=employee,
                acting_user=it_admin,
                detail={"file": "people.csv", "row": row.number, "created": True},
            )
            made[row.employee_number] = employee
        for employee in made.values():
            joiner.joiner_start(employee=employee, acting_user=it_admin)

    in_bulk = _in_rollback(bulk, django_capture_on_commit_callbacks)
    singly = _in_rollback(one_by_one, django_capture_on_commit_callbacks)

    differences = _same(in_bulk, singly)
    assert not differences, "\n".join(differences)
    rows = in_bulk["rows"]
    # The comparison is about something: every kind of row is there, attributed to the importer.
    assert len(rows["employees"]) == len(rows["runs"]) == len(rows["event deliveries"]) == 5
    assert {row["history_user_id"] for row in rows["employee history"] + rows["task history"]} == {it_admin.pk}
    assert {e["actor_id"] for e in rows["audit events"]} == {it_admin.pk}
    assert len(rows["audit events"]) == 15  # created, imported, join started: for each
    assert rows["dependencies"] and len(rows["tasks"]) > 10
    assert {path for path, _ in in_bulk["queued"]} == {"offboarding.tasks.task_execute", "portal.tasks.event_deliver"}
    assert len(in_bulk["queued"]) == len(set(in_bulk["queued"]))  # each queued once


def test_bulk_inserts_refuse_rows_they_would_write_incompletely_or_twice(it_admin):
    from portal.bulk import rows_insert, values_insert

    with pytest.raises(ValueError, match="gives no value for"):
        values_insert(AuditEvent, ["action", "target_type"], [("import", "x")])
    saved = EmployeeFactory()
    with pytest.raises(ValueError, match="new accounts.Employee rows only"):
        rows_insert([saved])
    twin = Employee(
        employee_number=saved.employee_number,
        first_name="Twin",
        last_name="Twin",
        work_email="twin@example.com",
        start_date=saved.start_date,
    )
    with pytest.raises(IntegrityError), transaction.atomic():  # Django's error, on both databases
        rows_insert([twin])
    assert Employee.objects.filter(employee_number=saved.employee_number).count() == 1
