"""Writing an HR file: an `ImportPlan` (see `accounts.hr_import`) applied all at once, or not at all.

`employee_import_apply` writes the plan's new people (bulk inserts, managers before their
reports), then its changes, with a history row per person naming the importing user and the
audit events the single-row services write ("employee created" via import, "status changed", and
"imported" with the file and row), then hands new people and moves to the lifecycle
(`accounts.hooks.employees_imported`: join and move runs), all in one transaction.
"""

import datetime
import logging
from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from simple_history.utils import bulk_update_with_history

from accounts.hooks import employees_imported
from accounts.hr_import import ImportPlan, Problem, employee_import_plan
from accounts.models import Employee, EmployeeImport, EmployeeImportStatus, EmployeeStatus
from portal.audit import audit_record_many
from portal.bulk import history_insert, rows_insert
from portal.models import AuditEvent
from portal.progress import progress_clear, progress_get, progress_set
from portal.queue import enqueue_on_commit
from portal.tabular import Row, Table, TableReadError, table_read

logger = logging.getLogger(__name__)

BATCH = 500


@transaction.atomic
def employee_import_apply(
    *,
    plan: ImportPlan,
    acting_user,
    file_name: str,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write `plan` (which must be `ok`, made from the database as it is now) and start its join and move runs.

    Every row is written or none: any error rolls the whole import back (history, audit and runs
    included). New people are inserted in bulk, level by level of the management chain, so a
    manager listed later in the file exists before their reports. People already in Portal get
    their changed fields saved; a changed role, department or manager is not saved here but
    handed to the lifecycle as a move (provisioning, revocations after the grace period), like
    the admin's move. `progress(done, total)` is called every few hundred rows (done counts the
    rows written, then the runs started). Returns the plan's summary.
    """
    if not plan.ok:
        raise ValueError("This plan has problems; it cannot be applied.")
    summary = plan.summary()
    total = summary["created"] + summary["updated"] + summary["join_runs"] + summary["move_runs"]
    done = 0

    def tick(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    now_number: dict[str, Employee] = {row.employee_number: row.existing for row in plan.rows if row.existing}
    events: list[tuple[str, Employee, dict]] = []
    file_detail = file_name[:255]

    # 1. New people, managers first (depth 0 has its manager in Portal or none).
    created: list[Employee] = []
    new_rows = [row for row in plan.rows if row.is_new]
    for depth in sorted({row.depth for row in new_rows}):
        level = [row for row in new_rows if row.depth == depth]
        for start in range(0, len(level), BATCH):
            batch = level[start : start + BATCH]
            employees = rows_insert([_new_employee(row, now_number) for row in batch])
            history_insert(Employee, employees, acting_user=acting_user)
            for row, employee in zip(batch, employees, strict=True):
                now_number[row.employee_number] = employee
                events.append((AuditEvent.Action.EMPLOYEE_CREATED, employee, {"via": "import"}))
                events.append(
                    (AuditEvent.Action.IMPORT, employee, {"file": file_detail, "row": row.number, "created": True})
                )
            created.extend(employees)
            tick(len(batch))

    # 2. Changes of people already in Portal (the move fields go to the lifecycle below).
    changed_rows = [row for row in plan.rows if not row.is_new and row.changes]
    moves: list[tuple[Employee, dict]] = []
    for start in range(0, len(changed_rows), BATCH):
        batch = changed_rows[start : start + BATCH]
        locked = Employee.objects.select_for_update(of=("self",)).in_bulk([row.existing.pk for row in batch])
        fields: set[str] = set()
        updated = []
        for row in batch:
            employee = locked[row.existing.pk]
            now_number[row.employee_number] = employee
            move = {}
            for name in row.changes:
                value = _value(row, name, now_number)
                if name in row.moves:
                    move[name] = value
                    continue
                if name == "status":
                    events.append(
                        (
                            AuditEvent.Action.STATUS_CHANGED,
                            employee,
                            {"from": employee.status, "to": value, "reason": f"HR import {file_detail}"},
                        )
                    )
                setattr(employee, name, value)
                fields.add(name)
            if move:
                moves.append((employee, move))
            if fields:
                updated.append(employee)
            events.append(
                (AuditEvent.Action.IMPORT, employee, {"file": file_detail, "row": row.number, "created": False})
            )
        if updated:
            bulk_update_with_history(
                updated, Employee, [*sorted(fields), "updated_at"], batch_size=BATCH, default_user=_user(acting_user)
            )
        tick(len(batch))
    audit_record_many(events=events, acting_user=acting_user)

    # 3. The lifecycle: join runs for the new people, move runs for the movers.
    joiners = [employee for employee in created if employee.status != EmployeeStatus.TERMINATED]
    if joiners or moves:
        employees_imported.fire(joiners=joiners, moves=moves, acting_user=acting_user, progress=tick)
    return summary


def _user(acting_user):
    return acting_user if getattr(acting_user, "pk", None) else None


def _new_employee(row, now_number: dict) -> Employee:
    values = dict(row.values)
    employee = Employee(**values)
    employee.manager = _manager(row, now_number)
    return employee


def _manager(row, now_number: dict) -> Employee | None:
    ref = row.manager_ref
    if ref is None:
        return None
    if ref[0] == "db":
        return Employee(pk=ref[1])
    return now_number[ref[1]]


def _value(row, name: str, now_number: dict):
    if name == "manager":
        ref = row.manager_ref
        if ref is None:
            return None
        if ref[0] == "db":
            return Employee.objects.get(pk=ref[1])
        return now_number.get(ref[1]) or Employee.objects.get(employee_number=ref[1])
    value = row.values[name]
    if isinstance(value, datetime.datetime):
        return value.date()
    return value


# --- The import's life: preview, confirm, run (here or on the queue), abandon ----------------------

RUN_TASK = "accounts.tasks.employee_import_run"


def _conf(name: str) -> int:
    from django.conf import settings

    defaults = {"BACKGROUND_ROWS": 500, "MAX_ROWS": 50_000, "MAX_MEGABYTES": 20, "PREVIEW_MINUTES": 60}
    return getattr(settings, "HR_IMPORT", {}).get(name, defaults[name])


def table_to_json(table: Table) -> dict:
    """The cells of `table` as JSON (dates as ISO text, which the plan reads back the same)."""
    return {
        "headers": table.headers,
        "header_row": table.header_row,
        "read_as": table.read_as,
        "rows": [[row.number, [_cell_json(cell) for cell in row.cells]] for row in table.rows],
    }


def table_from_json(data: dict) -> Table:
    return Table(
        headers=list(data["headers"]),
        rows=[Row(number=number, cells=list(cells)) for number, cells in data["rows"]],
        header_row=data.get("header_row", 1),
    )


def _cell_json(cell):
    if isinstance(cell, datetime.datetime):
        return cell.isoformat(sep=" ")
    if isinstance(cell, datetime.date):
        return cell.isoformat()
    return cell


def employee_import_read(
    *, data: bytes, file_name: str, encoding: str, date_format: str, acting_user=None
) -> tuple[Table | None, ImportPlan]:
    """Read and check an uploaded HR file; nothing is stored. A file that cannot be read is a plan with one problem.
    The rows are checked against `acting_user`'s admin scope, if they have one."""
    if len(data) > _conf("MAX_MEGABYTES") * 1024 * 1024:
        return None, ImportPlan(problems=[Problem(f"The file is larger than {_conf('MAX_MEGABYTES')} MB; split it.")])
    try:
        table = table_read(data, file_name=file_name, encoding=encoding)
    except TableReadError as exc:
        return None, ImportPlan(problems=[Problem(str(exc))])
    if len(table.rows) > _conf("MAX_ROWS"):
        limit = _conf("MAX_ROWS")
        return table, ImportPlan(
            problems=[
                Problem(f"The file has {len(table.rows):,} rows; at most {limit:,} are imported at once. Split it.")
            ]
        )
    return table, employee_import_plan(table, date_format=date_format, user=acting_user)


def employee_import_preview(
    *, table: Table, plan: ImportPlan, file_name: str, date_format: str, acting_user, lines: list | None = None
) -> EmployeeImport:
    """Keep a checked file's cells (and the preview's `lines`) until its import is confirmed or abandoned.

    The file itself is not kept. Stale previews of anyone are abandoned first."""
    employee_imports_forget_stale()
    return EmployeeImport.objects.create(
        created_by=acting_user,
        file_name=file_name[:255],
        read_as=table.read_as,
        date_format=date_format,
        rows={**table_to_json(table), "preview": lines or []},
        summary=plan.summary(),
    )


def employee_import_confirm(*, record: EmployeeImport, acting_user) -> EmployeeImport:
    """Import a previewed file: at once when it is small, else on the queue (`employee_import_run`)."""
    if record.status != EmployeeImportStatus.PREVIEWED:
        return record
    now = timezone.now()
    moved = EmployeeImport.objects.filter(pk=record.pk, status=EmployeeImportStatus.PREVIEWED).update(
        status=EmployeeImportStatus.QUEUED, queued_at=now
    )
    if not moved:  # a second click, or the preview expired meanwhile
        record.refresh_from_db()
        return record
    if record.summary.get("rows", 0) > _conf("BACKGROUND_ROWS"):
        progress_set(_progress_key(record.pk), done=0, total=1, phase="waiting for a worker")
        enqueue_on_commit(RUN_TASK, record.pk, timeout=IMPORT_TIMEOUT)
        record.refresh_from_db()
        return record
    return employee_import_run(import_id=record.pk)


# A worker may take this long for one import; a claim older than this (a worker killed mid-import,
# whose transaction rolled back) may be taken again by the queue's redelivery.
IMPORT_TIMEOUT = 1800


def employee_import_run(*, import_id: int) -> EmployeeImport:
    """Check the file again against the database as it is now and write it, or refuse it. Idempotent.

    Claimed with a conditional update (queued → running), so a second delivery does nothing; a claim
    older than `IMPORT_TIMEOUT` (its worker died, its transaction rolled back) is taken again.
    The cells are deleted when the import is over, whatever the outcome.
    """
    now = timezone.now()
    claimed = (
        EmployeeImport.objects.filter(pk=import_id)
        .filter(
            Q(status=EmployeeImportStatus.QUEUED)
            | Q(status=EmployeeImportStatus.RUNNING, started_at__lt=now - datetime.timedelta(seconds=IMPORT_TIMEOUT))
        )
        .update(status=EmployeeImportStatus.RUNNING, started_at=now)
    )
    record = EmployeeImport.objects.select_related("created_by").get(pk=import_id)
    if not claimed:
        return record
    key = _progress_key(record.pk)
    progress_set(key, done=0, total=1, phase="checking the file again")
    plan = employee_import_plan(table_from_json(record.rows), date_format=record.date_format, user=record.created_by)
    if not plan.ok:
        return _finish(record, EmployeeImportStatus.REFUSED, problems=[p.as_dict() for p in plan.problems])

    def progress(done: int, total: int) -> None:
        progress_set(key, done=done, total=max(total, 1), phase="importing")

    try:
        summary = employee_import_apply(
            plan=plan, acting_user=record.created_by, file_name=record.file_name, progress=progress
        )
    except ValidationError as exc:
        return _finish(record, EmployeeImportStatus.REFUSED, problems=[Problem(m).as_dict() for m in exc.messages])
    except Exception:
        logger.exception("HR import %s failed", record.pk)
        _finish(
            record,
            EmployeeImportStatus.FAILED,
            error="The import stopped on an unexpected error and wrote nothing. IT can find the details in the "
            "server log; upload the file again to retry.",
        )
        raise
    return _finish(record, EmployeeImportStatus.DONE, summary=summary)


def _finish(record: EmployeeImport, status: str, **fields) -> EmployeeImport:
    for name, value in fields.items():
        setattr(record, name, value)
    record.status = status
    record.rows = {}
    record.finished_at = timezone.now()
    record.save(update_fields=["status", "rows", "finished_at", *fields])
    progress_clear(_progress_key(record.pk))
    return record


def employee_import_abandon(*, record: EmployeeImport) -> EmployeeImport:
    """Drop a preview nobody will confirm: its cells are deleted, nothing is written."""
    if EmployeeImport.objects.filter(pk=record.pk, status=EmployeeImportStatus.PREVIEWED).update(
        status=EmployeeImportStatus.ABANDONED, rows={}, finished_at=timezone.now()
    ):
        progress_clear(_progress_key(record.pk))
    record.refresh_from_db()
    return record


def employee_imports_forget_stale() -> int:
    """Abandon previews older than `PORTAL_IMPORT_PREVIEW_MINUTES` (their cells deleted). Returns how many."""
    cutoff = timezone.now() - datetime.timedelta(minutes=_conf("PREVIEW_MINUTES"))
    return EmployeeImport.objects.filter(status=EmployeeImportStatus.PREVIEWED, created_at__lt=cutoff).update(
        status=EmployeeImportStatus.ABANDONED, rows={}, finished_at=timezone.now()
    )


def employee_import_progress(record: EmployeeImport) -> dict:
    """Where an import stands, for its status page and status endpoint."""
    figures = progress_get(_progress_key(record.pk)) or {}
    total = figures.get("total") or 0
    done = figures.get("done") or 0
    if record.status == EmployeeImportStatus.DONE:
        done = total = max(total, 1)
    percent = int(100 * done / total) if total else 0
    return {
        "status": record.status,
        "status_label": record.get_status_display(),
        "over": record.is_over,
        "phase": figures.get("phase", ""),
        "done": done,
        "total": total,
        "percent": min(percent, 100),
        "summary": record.summary,
        "problems": record.problems,
        "error": record.error,
    }


def _progress_key(pk: int) -> str:
    return f"hr-import-{pk}"
