"""A 10,000-row HR file: preview (read + check) and confirm (write, history, audit, join runs).

In the seeded company, `run` builds a CSV of `PORTAL_BENCH_IMPORT_ROWS` (10,000) new people as an
HR system exports it (semicolons, Windows-1252, day-first dates, departments, locations and roles by
name, a manager for each row from earlier rows), then times, in this process, `employee_import_read`
(the preview's reading and checking) and `employee_import_apply` (the confirm: rows, history rows,
audit events and one join run per person), as the queue's worker runs them. Goal: both under 30 s.
Wall clock and this process's CPU time are both reported (a busy machine stretches the first), with
the statements sent.
Checks the rows, history rows and join runs it made (RowCountError otherwise).
"""

import os
import time
from pathlib import Path

from bench.registry import Bench, Context, RowCountError, env_int, register

GOAL_SECONDS = 30.0


def _file(rows: int) -> bytes:
    from accounts.models import Department, Location, Role

    departments = list(Department.objects.values_list("name", flat=True)[:10])
    locations = list(Location.objects.values_list("name", flat=True)[:5])
    roles = list(Role.objects.values_list("name", flat=True)[:5])
    lines = ["Employee number;First name;Last name;E-Mail;Department;Office;Role;Supervisor;Hire date"]
    for i in range(rows):
        manager = f"BI{i // 10:06d}" if i >= 10 else ""
        lines.append(
            f"BI{i:06d};Jürgen{i};Müller{i};bench.import{i}@example.com;{departments[i % len(departments)]};"
            f"{locations[i % len(locations)]};{roles[i % len(roles)]};{manager};{1 + i % 28:02d}.03.2031"
        )
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def _server_cpu(connection) -> float | None:
    """CPU seconds used so far by this connection's PostgreSQL backend (same host only), else None."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Queries:
    """Counts the statements Django sends (an `execute_wrapper`)."""

    def __init__(self):
        self.n = 0

    def __call__(self, execute, sql, params, many, context):
        self.n += 1
        return execute(sql, params, many, context)


@register
class HrImport(Bench):
    name = "hr_import"

    def run(self, ctx: Context) -> dict:
        from django.db import connection

        from accounts.models import Employee
        from accounts.services.hr_import import employee_import_apply, employee_import_read
        from offboarding.models import ChecklistKind, ChecklistRun

        rows = env_int("PORTAL_BENCH_IMPORT_ROWS", 10_000)
        data = _file(rows)
        user = ctx.user("it_admin")
        queries = _Queries()
        with connection.execute_wrapper(queries):
            started, cpu = time.perf_counter(), time.process_time()
            table, plan = employee_import_read(data=data, file_name="bench.csv", encoding="auto", date_format="dmy")
            preview_s, preview_cpu, preview_queries = (
                time.perf_counter() - started,
                time.process_time() - cpu,
                queries.n,
            )
            if not plan.ok:
                raise RowCountError(f"the bench file was refused: {[str(p) for p in plan.problems[:3]]}")
            server = _server_cpu(connection)
            started, cpu = time.perf_counter(), time.process_time()
            summary = employee_import_apply(plan=plan, acting_user=user, file_name="bench.csv")
            confirm_s, confirm_cpu = time.perf_counter() - started, time.process_time() - cpu
            if server is not None:
                server = _server_cpu(connection) - server
        confirm_queries = queries.n - preview_queries
        made = Employee.objects.filter(employee_number__startswith="BI").count()
        runs = ChecklistRun.objects.filter(kind=ChecklistKind.JOIN, employee__employee_number__startswith="BI").count()
        history = Employee.history.filter(employee_number__startswith="BI", history_type="+").count()
        if not (made == runs == history == rows):
            raise RowCountError(f"expected {rows} people, history rows and join runs; got {made}, {history}, {runs}")
        return {
            "rows": rows,
            "file_bytes": len(data),
            "read_as": table.read_as,
            "preview_seconds": round(preview_s, 2),
            "confirm_seconds": round(confirm_s, 2),
            # The machine may be shared: the CPU time of this process (not the database server's) is
            # the steadier figure, and the statements it sent (COPY on PostgreSQL not counted).
            "preview_cpu_seconds": round(preview_cpu, 2),
            "confirm_cpu_seconds": round(confirm_cpu, 2),
            "confirm_database_cpu_seconds": None if server is None else round(server, 2),  # PostgreSQL's backend
            "preview_queries": preview_queries,
            "confirm_queries": confirm_queries,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "total_seconds": round(preview_s + confirm_s, 2),
            "rows_per_second": round(rows / (preview_s + confirm_s), 1),
            "summary": summary,
        }

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        lines = ["company   rows  preview s  confirm s  total s  (cpu: preview, confirm)  goal"]
        for size, figures in sorted(by_size.items()):
            ok = figures["total_seconds"] < GOAL_SECONDS
            lines.append(
                f"{size:>7}  {figures['rows']:>5}  {figures['preview_seconds']:>9}  {figures['confirm_seconds']:>9}  "
                f"{figures['total_seconds']:>7}  ({figures['preview_cpu_seconds']}, {figures['confirm_cpu_seconds']})  "
                f"{'met' if ok else 'MISSED'} (< {GOAL_SECONDS:.0f} s)"
            )
        document = {"goal_seconds": GOAL_SECONDS, "by_size": by_size}
        return document, "\n".join(lines)
