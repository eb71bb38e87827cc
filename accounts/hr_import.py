"""The HR file: reading an employee export as HR systems write it, and checking it before anything is written.

`employee_import_plan(table, date_format=...)` takes a `portal.tabular.Table` (any CSV or XLSX,
cells already trimmed) and returns an `ImportPlan`: for every row what will be created or changed,
how many join and move runs the import will start, or the `Problem`s that refuse the file. A problem
names the spreadsheet row (header = row 1), the column as the file writes it, the value and the
reason in plain words with the valid values. The plan reads the database in a number of queries that
depends on the file's length only (chunks of `CHUNK` rows), never on the company's size, except for
the management chains it walks (one query per level).

Headers are matched to fields whatever their case, spacing or punctuation (`Employee_Number`,
`employee number `, `Employee #`), and by the names HR systems give them (`COLUMNS`). Departments,
locations and roles are named by code or by name; a manager by employee number or work email, in
Portal or anywhere in the same file. Dates are ISO (2027-03-01) or, when the import form declares
it, day-first or month-first; a date that could be either is never guessed.

Writing is `accounts.services.hr_import.employee_import_apply`, which takes a plan.
"""

import datetime
import re
import unicodedata
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from accounts.models import Department, Employee, EmployeeStatus, EmploymentType, Location, Role
from accounts.scoping import allows, is_scoped, restrict, scope_description
from portal.tabular import Table, column_letter

CHUNK = 500
LISTED_VALUES = 25  # valid values named in one message, at most

DATE_FORMATS = {
    "iso": "ISO only: 2027-03-01 (YYYY-MM-DD)",
    "dmy": "Day first: 01/03/2027 is 1 March (DD/MM/YYYY, DD.MM.YYYY, DD-MM-YYYY)",
    "mdy": "Month first: 03/01/2027 is 1 March (MM/DD/YYYY, MM-DD-YYYY)",
}


@dataclass(frozen=True)
class Column:
    """One field the HR file can carry: the header the template writes, and the other names accepted."""

    field: str
    header: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    help: str = ""


COLUMNS = (
    Column(
        "employee_number",
        "Employee number",
        (
            "employee no",
            "employee id",
            "employee number",
            "id",
            "personnel number",
            "personnel no",
            "pers no",
            "staff number",
            "staff id",
            "worker id",
            "employee code",
            "number",
        ),
        required=True,
        help="HR's key for the person; a person already in Portal with this number is updated.",
    ),
    Column("first_name", "First name", ("given name", "legal first name", "firstname", "forename"), required=True),
    Column("last_name", "Last name", ("surname", "family name", "legal last name", "lastname"), required=True),
    Column("preferred_name", "Preferred name", ("nickname", "preferred first name", "known as", "display name")),
    Column(
        "work_email",
        "Work email",
        ("email", "e mail", "email address", "work email address", "business email", "work e mail", "company email"),
        required=True,
    ),
    Column("title", "Job title", ("title", "position", "business title", "job", "position title")),
    Column(
        "department",
        "Department",
        ("department code", "department name", "dept", "team", "organizational unit", "org unit"),
        help="Code or name of a department in Portal.",
    ),
    Column(
        "location",
        "Location",
        ("location code", "location name", "office", "site", "work location", "office location"),
        help="Code or name of a location in Portal.",
    ),
    Column(
        "manager",
        "Manager",
        (
            "manager employee number",
            "manager id",
            "manager number",
            "manager email",
            "supervisor",
            "supervisor id",
            "reports to",
            "reporting to",
            "line manager",
            "manager work email",
        ),
        help="The manager's employee number or work email: someone in Portal, or anywhere in this file.",
    ),
    Column("role", "Role", ("role code", "role name", "job role"), help="Code or name of a role in Portal."),
    Column(
        "employment_type",
        "Employment type",
        ("worker type", "contract type", "employee type", "type of employment"),
        help="Empty: full-time for a new person, unchanged for someone already in Portal.",
    ),
    Column(
        "status",
        "Status",
        ("employment status", "employee status", "worker status"),
        help="Empty: pre-hire for a new person, unchanged for someone already in Portal.",
    ),
    Column(
        "start_date",
        "Start date",
        ("hire date", "date of hire", "joining date", "start", "entry date", "date of joining", "employment start"),
        required=True,
    ),
    Column("end_date", "End date", ("contract end date", "contract end", "last working day", "exit date")),
)
COLUMNS_BY_FIELD = {column.field: column for column in COLUMNS}
REFERENCE_FIELDS = {"department": Department, "location": Location, "role": Role}
CHOICE_FIELDS = {"employment_type": EmploymentType, "status": EmployeeStatus}
CHOICE_ALIASES = {
    "employment_type": {
        "fulltime": "full_time",
        "parttime": "part_time",
        "contract": "contractor",
        "freelance": "contractor",
        "internship": "intern",
        "trainee": "intern",
    },
    "status": {
        "prehire": "pre_hire",
        "onboarding": "pre_hire",
        "hired": "pre_hire",
        "employed": "active",
        "onleave": "leave_of_absence",
        "leave": "leave_of_absence",
        "inactive": "leave_of_absence",
    },
}
TEXT_FIELDS = ("employee_number", "first_name", "last_name", "preferred_name", "work_email", "title")
REQUIRED_TEXT = {
    "employee_number": "an employee number",
    "first_name": "a first name",
    "last_name": "a last name",
    "work_email": "a work email",
    "start_date": "a start date",
}
MOVE_FIELDS = ("role", "department", "manager")
SHOWN_FIELDS = (
    "employee_number",
    "first_name",
    "last_name",
    "preferred_name",
    "work_email",
    "title",
    "department",
    "location",
    "manager",
    "role",
    "employment_type",
    "status",
    "start_date",
    "end_date",
)


def header_key(text: str) -> str:
    """A header as compared: case, accents, punctuation and spacing ignored (`Employee_Number ` = `employee number`)."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    text = text.casefold().replace("#", " number ").replace("e-mail", "email")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


HEADER_FIELDS: dict[str, str] = {}
for _column in COLUMNS:
    for _name in (_column.field, _column.header, *_column.aliases):
        HEADER_FIELDS.setdefault(header_key(_name), _column.field)


# --- Results -----------------------------------------------------------------------------------


@dataclass
class Problem:
    """Why the file is refused: where (row as the spreadsheet numbers it, column as the file writes it), what, why."""

    reason: str
    row: int | None = None
    column: str = ""
    value: str = ""

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"Row {self.row}")
        if self.column:
            where.append(f"column “{self.column}”")
        if self.value != "":
            where.append(f"value “{self.value}”")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "value": self.value, "reason": self.reason}


@dataclass
class PlannedRow:
    """One person of the file: the values it sets (references resolved) and, for someone in Portal, what changes."""

    number: int
    employee_number: str
    values: dict = field(default_factory=dict)
    manager_ref: tuple | None = None  # ("db", pk), ("file", employee number) or None (no manager)
    existing: Employee | None = None
    changes: dict = field(default_factory=dict)  # field -> (old shown, new shown)
    depth: int = 0

    @property
    def is_new(self) -> bool:
        return self.existing is None

    @property
    def moves(self) -> list[str]:
        if self.existing is None or self.existing.status == EmployeeStatus.TERMINATED:
            return []
        return [name for name in MOVE_FIELDS if name in self.changes]

    @property
    def starts_join(self) -> bool:
        return self.existing is None and self.values.get("status") != EmployeeStatus.TERMINATED


@dataclass
class ImportPlan:
    """What an import will do, or the problems that stop it (then `rows` is empty and nothing may be written)."""

    rows: list[PlannedRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)  # the fields the file has a column for
    headers: dict = field(default_factory=dict)  # field -> header as written

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict:
        created = [row for row in self.rows if row.is_new]
        updated = [row for row in self.rows if not row.is_new and row.changes]
        return {
            "rows": len(self.rows),
            "created": len(created),
            "updated": len(updated),
            "unchanged": len(self.rows) - len(created) - len(updated),
            "join_runs": sum(1 for row in created if row.starts_join),
            "move_runs": sum(1 for row in updated if row.moves),
        }


# --- Planning ----------------------------------------------------------------------------------


def employee_import_plan(table: Table, *, date_format: str = "iso", user=None) -> ImportPlan:
    """Check `table` as an HR file and say what importing it would do (see the module docstring).

    For a scoped `user` (`accounts.AdminScope`), a row about someone outside their scope, or that would
    leave the person outside it, or that names a manager outside it, is a problem like any other: the
    file is refused and nothing is written.
    """
    if date_format not in DATE_FORMATS:
        raise ValueError(f"Unknown date format {date_format!r}.")
    plan = ImportPlan()
    columns = _map_headers(table, plan)
    if plan.problems:
        return plan
    planner = _Planner(table, columns, date_format, plan, user=user)
    planner.run()
    if plan.problems:
        plan.rows = []
        plan.problems.sort(key=lambda p: (p.row or 0, _column_order(columns, p.column)))
    return plan


def _column_order(columns: dict, header: str) -> int:
    for index, (_, written) in columns.items():
        if written == header:
            return index
    return -1


def accepted_headers() -> str:
    return ", ".join(column.header for column in COLUMNS)


def _map_headers(table: Table, plan: ImportPlan) -> dict[int, tuple[str, str]]:
    """{column index: (field, header as written)}; header problems go to `plan.problems`."""
    columns: dict[int, tuple[str, str]] = {}
    seen: dict[str, int] = {}
    for index, header in enumerate(table.headers):
        letter = column_letter(index)
        if header == "":
            plan.problems.append(
                Problem(
                    f"Column {letter} has values but no header. Give it one of the headers Portal reads: "
                    f"{accepted_headers()}; or delete the column.",
                    row=table.header_row,
                )
            )
            continue
        name = HEADER_FIELDS.get(header_key(header))
        if name is None:
            plan.problems.append(
                Problem(
                    f"Portal does not know the column “{header}” (column {letter}). The columns it reads are: "
                    f"{accepted_headers()} (any case and spacing; see the template). Rename the column or delete it.",
                    row=table.header_row,
                    column=header,
                )
            )
            continue
        if name in seen:
            first = seen[name]
            plan.problems.append(
                Problem(
                    f"Columns {column_letter(first)} “{table.headers[first]}” and {letter} “{header}” are both "
                    f"{COLUMNS_BY_FIELD[name].header.lower()}; keep one of them.",
                    row=table.header_row,
                    column=header,
                )
            )
            continue
        seen[name] = index
        columns[index] = (name, header)
    missing = [c.header for c in COLUMNS if c.required and c.field not in seen]
    if missing and not any(p.column for p in plan.problems):
        plan.problems.append(
            Problem(
                f"The file has no column for {_and(missing)}, which every person needs. Columns found: "
                f"{', '.join(h for h in table.headers if h) or 'none'}.",
                row=table.header_row,
            )
        )
    width = len(table.headers)
    for row in table.rows:
        extra = [i for i, cell in enumerate(row.cells[width:], start=width) if cell != ""]
        if extra:
            plan.problems.append(
                Problem(
                    f"This row has a value in column {column_letter(extra[0])}, which has no header; "
                    "a value in a quoted cell may hold a stray delimiter.",
                    row=row.number,
                    value=str(row.cells[extra[0]]),
                )
            )
    plan.fields = [name for name, _ in columns.values()]
    plan.headers = dict(columns.values())
    return columns


class _Planner:
    def __init__(self, table: Table, columns: dict, date_format: str, plan: ImportPlan, user=None):
        self.table, self.columns, self.date_format, self.plan = table, columns, date_format, plan
        self.user, self.scoped = user, is_scoped(user)
        self.headers = plan.headers
        self.raw: dict[int, dict] = {}  # row number -> {field: cell}

    def problem(self, row: int, name: str, value, reason: str) -> None:
        self.plan.problems.append(
            Problem(reason, row=row, column=self.headers.get(name, COLUMNS_BY_FIELD[name].header), value=_shown(value))
        )

    def run(self) -> None:
        rows = []
        for table_row in self.table.rows:
            cells = {name: table_row.cells[index] for index, (name, _) in self.columns.items()}
            self.raw[table_row.number] = cells
            planned = self._parse_row(table_row.number, cells)
            if planned is not None:
                rows.append(planned)
        if not rows and not self.plan.problems:
            self.plan.problems.append(Problem("The file has a header but no rows of people."))
            return
        self._duplicates(rows)
        self._existing(rows)
        self._emails(rows)
        self._managers(rows)
        self._scope(rows)
        self._rules(rows)
        rows.sort(key=lambda r: (r.depth, r.number))
        self.plan.rows = rows

    # --- one row ---

    def _parse_row(self, number: int, cells: dict) -> PlannedRow | None:
        before = len(self.plan.problems)
        values: dict = {}
        for name, cell in cells.items():
            text = cell if isinstance(cell, str) else ""
            if name in REQUIRED_TEXT and (cell == "" or cell is None):
                self.problem(number, name, "", f"This cell is empty; every person needs {REQUIRED_TEXT[name]}.")
                continue
            if name in TEXT_FIELDS:
                if not isinstance(cell, str):
                    text = _shown(cell)
                limit = Employee._meta.get_field(name).max_length
                if len(text) > limit:
                    self.problem(number, name, text, f"This is {len(text)} characters long; at most {limit} fit.")
                    continue
                if name == "work_email":
                    text = text.lower()
                    try:
                        validate_email(text)
                    except ValidationError:
                        self.problem(
                            number, name, cell, "This is not an email address (it should look like name@example.com)."
                        )
                        continue
                values[name] = text
            elif name in ("start_date", "end_date"):
                if cell == "":
                    values[name] = None
                    continue
                try:
                    values[name] = parse_date(cell, self.date_format)
                except ValueError as exc:
                    self.problem(number, name, cell, str(exc))
            elif name in CHOICE_FIELDS:
                if text == "":
                    continue  # the default for a new person, unchanged for someone in Portal
                choice = parse_choice(name, text)
                if choice is None:
                    self.problem(number, name, text, f"This is not {_article(name)}. Valid: {_choices_listed(name)}.")
                    continue
                values[name] = choice
            elif name in REFERENCE_FIELDS or name == "manager":
                values[name] = text  # resolved with the others below
        if len(self.plan.problems) > before:
            return None
        start, end = values.get("start_date"), values.get("end_date")
        if start and end and end < start:
            self.problem(
                number, "end_date", cells["end_date"], f"The end date is before the start date ({start:%Y-%m-%d})."
            )
            return None
        return PlannedRow(number=number, employee_number=values["employee_number"], values=values)

    # --- across rows ---

    def _duplicates(self, rows: list[PlannedRow]) -> None:
        for name, label in (("employee_number", "employee number"), ("work_email", "work email")):
            first: dict[str, int] = {}
            for row in rows:
                key = row.values[name].casefold() if name == "work_email" else row.values[name]
                if key in first:
                    self.problem(
                        row.number,
                        name,
                        row.values[name],
                        f"Rows {first[key]} and {row.number} both have this {label}; each person must appear once "
                        f"and each {label} belong to one person. Remove one of the two rows or correct it.",
                    )
                else:
                    first[key] = row.number

    def _existing(self, rows: list[PlannedRow]) -> None:
        numbers = [row.employee_number for row in rows]
        found: dict[str, Employee] = {}
        qs = Employee.objects.select_related("department", "location", "role", "manager")
        for start in range(0, len(numbers), CHUNK):
            for employee in qs.filter(employee_number__in=numbers[start : start + CHUNK]):
                found[employee.employee_number] = employee
        for row in rows:
            row.existing = found.get(row.employee_number)
        self.by_number = {row.employee_number: row for row in rows}
        self.existing_by_number = found

    def _emails(self, rows: list[PlannedRow]) -> None:
        emails = [row.values["work_email"] for row in rows]
        holders: dict[str, Employee] = {}
        for start in range(0, len(emails), CHUNK):
            for employee in Employee.objects.filter(work_email__in=emails[start : start + CHUNK]).only(
                *("pk", "employee_number", "first_name", "last_name", "preferred_name", "work_email"),
                *("department", "location"),  # whether a scoped importer may see who holds it
            ):
                holders[employee.work_email.lower()] = employee
        for row in rows:
            holder = holders.get(row.values["work_email"])
            if holder is not None and (row.existing is None or holder.pk != row.existing.pk):
                if self.scoped and not allows(holder, self.user):
                    self.problem(
                        row.number,
                        "work_email",
                        row.values["work_email"],
                        "This is already the work email of someone outside your scope. Correct the email, or ask an "
                        "IT admin.",
                    )
                    continue
                self.problem(
                    row.number,
                    "work_email",
                    row.values["work_email"],
                    f"This is already the work email of {holder.full_name} ({holder.employee_number}), who is not "
                    "the person of this row. Correct the email, or change theirs in Portal first.",
                )

    def _references(self) -> dict:
        lookups = {}
        for name, model in REFERENCE_FIELDS.items():
            if name in self.plan.fields:
                lookups[name] = _Lookup(model)
        return lookups

    def _managers(self, rows: list[PlannedRow]) -> None:
        lookups = self._references()
        for row in rows:
            for name, lookup in lookups.items():
                text = row.values.pop(name)
                if text == "":
                    row.values[name] = None
                    continue
                found, reason = lookup.find(text)
                if reason:
                    self.problem(row.number, name, text, reason)
                else:
                    row.values[name] = found
        if "manager" not in self.plan.fields:
            return
        wanted_numbers, wanted_emails = set(), set()
        for row in rows:
            text = row.values["manager"]
            if text and text not in self.by_number:
                (wanted_emails if "@" in text else wanted_numbers).add(text.lower() if "@" in text else text)
        db = {}
        for values, lookup_field in (
            (sorted(wanted_numbers), "employee_number"),
            (sorted(wanted_emails), "work_email"),
        ):
            for start in range(0, len(values), CHUNK):
                # A scoped user's managers come from inside their scope, as in the admin's manager picker.
                in_scope = restrict(Employee.objects.all(), self.user)
                for employee in in_scope.filter(**{f"{lookup_field}__in": values[start : start + CHUNK]}).only(
                    "pk", "employee_number", "work_email", "manager_id", "first_name", "last_name", "preferred_name"
                ):
                    db[employee.employee_number] = employee
                    db[employee.work_email.lower()] = employee
        file_emails = {row.values["work_email"]: row for row in rows}
        for row in rows:
            text = row.values.pop("manager")
            if text == "":
                row.manager_ref = None
                continue
            target = self.by_number.get(text) or (file_emails.get(text.lower()) if "@" in text else None)
            if target is not None:
                if target is row:
                    self.problem(
                        row.number, "manager", text, "This is the person of this row: nobody can manage themselves."
                    )
                    continue
                row.manager_ref = ("file", target.employee_number)
                continue
            employee = db.get(text.lower() if "@" in text else text)
            if employee is None:
                kind = "work email" if "@" in text else "employee number"
                where = "in Portal inside your scope" if self.scoped else "in Portal"
                self.problem(
                    row.number,
                    "manager",
                    text,
                    f"Nobody {where} or in this file has this {kind}. Write the manager's employee number or work "
                    "email; a manager who is new must have a row of their own in this file.",
                )
                continue
            if row.existing is not None and employee.pk == row.existing.pk:
                self.problem(
                    row.number, "manager", text, "This is the person of this row: nobody can manage themselves."
                )
                continue
            row.manager_ref = ("db", employee.pk)
        self._cycles(rows)

    def _cycles(self, rows: list[PlannedRow]) -> None:
        """Refuse management loops, through the file and through Portal's current managers; set each row's depth."""
        # Everyone is a node named by employee number. The file's rows say their manager; everyone
        # else keeps the manager Portal has (walked up, one query per level of the chain).
        parent: dict[str, str | None] = {}
        pk_number: dict[int, str] = {}
        for row in rows:
            if row.existing is not None:
                pk_number[row.existing.pk] = row.employee_number
        pending_pks: set[int] = set()
        for row in rows:
            ref = row.manager_ref
            if ref is None:
                parent[row.employee_number] = None
            elif ref[0] == "file":
                parent[row.employee_number] = ref[1]
            else:
                parent[row.employee_number] = ("pk", ref[1])
                pending_pks.add(ref[1])
        known: dict[int, tuple[str, int | None]] = {}
        while pending_pks:
            batch = sorted(pending_pks - set(known))
            pending_pks = set()
            for start in range(0, len(batch), CHUNK):
                for pk, number, manager_id in Employee.objects.filter(pk__in=batch[start : start + CHUNK]).values_list(
                    "pk", "employee_number", "manager_id"
                ):
                    known[pk] = (number, manager_id)
                    if manager_id and manager_id not in known:
                        pending_pks.add(manager_id)
        for number, manager_id in known.values():
            if number not in parent:  # not in the file: Portal's manager stands
                parent[number] = ("pk", manager_id) if manager_id else None
        for key, value in list(parent.items()):
            if isinstance(value, tuple):
                pk = value[1]
                parent[key] = pk_number.get(pk) or (known[pk][0] if pk in known else None)
        depth: dict[str, int] = {}
        reported: set[frozenset] = set()
        for row in rows:
            chain, node = [], row.employee_number
            on_chain: dict[str, int] = {}
            while node is not None and node not in depth and node not in on_chain:
                on_chain[node] = len(chain)
                chain.append(node)
                node = parent.get(node)
            if node is not None and node in on_chain:  # a loop
                loop = chain[on_chain[node] :]
                key = frozenset(loop)
                if key not in reported:
                    reported.add(key)
                    in_file = sorted(self.by_number[n].number for n in loop if n in self.by_number)
                    first = self.by_number.get(loop[0], row)
                    path = " → ".join([*loop, loop[0]])
                    self.problem(
                        min(in_file) if in_file else row.number,
                        "manager",
                        self.raw[first.number].get("manager", ""),
                        f"{_rows_named(in_file)} make a management loop: {path} (each reports to the next). "
                        "Someone in the loop must report to a manager outside it.",
                    )
                for n in loop:
                    depth[n] = 0
                chain = chain[: on_chain[node]]
                base = 0
            else:
                base = depth.get(node, -1) + 1 if node is not None else 0
            for offset, n in enumerate(reversed(chain)):
                depth[n] = base + offset
        for row in rows:
            row.depth = depth.get(row.employee_number, 0)

    def _scope(self, rows: list[PlannedRow]) -> None:
        """A scoped user imports only people inside their scope, who stay inside it (department or location)."""
        if not self.scoped:
            return
        scope = scope_description(self.user)
        for row in rows:
            if row.existing is not None and not allows(row.existing, self.user):
                self.problem(
                    row.number,
                    "employee_number",
                    row.employee_number,
                    f"This employee number belongs to someone outside your scope ({scope}): an IT admin imports "
                    "this row.",
                )
                continue
            after = {}
            for name in ("department", "location"):
                if name in self.plan.fields:
                    if name not in row.values:
                        break  # its value was refused already
                    after[name] = row.values[name]
                else:
                    after[name] = getattr(row.existing, name) if row.existing is not None else None
            else:
                if not allows(Employee(**after), self.user):
                    column = "department" if "department" in self.plan.fields else "location"
                    if column not in self.plan.fields:
                        column = "employee_number"
                    self.problem(
                        row.number,
                        column,
                        self.raw[row.number].get(column, row.employee_number),
                        f"This person would be outside your scope ({scope}): give a department or location inside "
                        "it, or ask an IT admin to import this row.",
                    )

    def _rules(self, rows: list[PlannedRow]) -> None:
        for row in rows:
            status = row.values.get("status")
            current = row.existing.status if row.existing is not None else None
            if status == EmployeeStatus.TERMINATED and current != EmployeeStatus.TERMINATED:
                self.problem(
                    row.number,
                    "status",
                    self.raw[row.number]["status"],
                    "Employees cannot be terminated by import: start the leaver process on their page instead "
                    "(it cuts access and collects hardware).",
                )
                continue
            if current == EmployeeStatus.TERMINATED and status not in (None, EmployeeStatus.TERMINATED):
                self.problem(
                    row.number,
                    "status",
                    self.raw[row.number]["status"],
                    "This person left and is terminated in Portal; an import cannot bring them back. "
                    "A rehire gets a new row with a new employee number.",
                )
                continue
            if row.existing is not None:
                self._changes(row)
                start = row.values.get("start_date") or row.existing.start_date
                end = row.values.get("end_date", row.existing.end_date)
                if end and start and end < start and "start_date" in row.values:
                    self.problem(
                        row.number,
                        "start_date",
                        self.raw[row.number]["start_date"],
                        f"This is after the end date Portal has ({end:%Y-%m-%d}).",
                    )

    def _changes(self, row: PlannedRow) -> None:
        existing = row.existing
        for name, new in row.values.items():
            old = getattr(existing, name)
            if old is None and new == "":
                continue
            if old != new:
                row.changes[name] = (_display(old), _display(new))
        if "manager" in self.plan.fields:
            old_manager = existing.manager_id
            ref = row.manager_ref
            if ref is None:
                new_manager = None
            elif ref[0] == "db":
                new_manager = ref[1]
            else:
                target = self.existing_by_number.get(ref[1])
                new_manager = target.pk if target is not None else ("new", ref[1])
            if new_manager != old_manager:
                old_shown = existing.manager.employee_number if existing.manager_id else ""
                new_shown = ref[1] if ref and ref[0] == "file" else self.raw[row.number]["manager"]
                row.changes["manager"] = (old_shown, new_shown)


class _Lookup:
    """Departments, locations or roles by code or by name, case and spacing ignored."""

    def __init__(self, model):
        self.model = model
        self.label = model._meta.verbose_name
        self.rows = list(model.objects.only("pk", "code", "name").order_by("name"))
        self.by_code = {_key(r.code): r for r in self.rows}
        self.by_name = {_key(r.name): r for r in self.rows}

    def find(self, text: str):
        key = _key(text)
        by_code, by_name = self.by_code.get(key), self.by_name.get(key)
        if by_code is not None and by_name is not None and by_code.pk != by_name.pk:
            return None, (
                f"This is the code of {self.label} “{by_code.name}” ({by_code.code}) and the name of "
                f"{self.label} “{by_name.name}” ({by_name.code}); write the code to say which."
            )
        found = by_code or by_name
        if found is None:
            listed = ", ".join(f"{r.code} ({r.name})" for r in self.rows[:LISTED_VALUES])
            more = (
                f" and {len(self.rows) - LISTED_VALUES} more (see the template)"
                if len(self.rows) > LISTED_VALUES
                else ""
            )
            valid = f"Valid codes (names): {listed}{more}." if self.rows else f"Portal has no {self.label} yet."
            return None, f"No {self.label} has this code or name. {valid}"
        return found, ""


def _key(text: str) -> str:
    return " ".join(str(text).casefold().split())


# --- Values --------------------------------------------------------------------------------------


def parse_choice(name: str, text: str) -> str | None:
    """The stored value of a choice written as its value or label in any case ("Full-time", "full_time")."""
    choices = CHOICE_FIELDS[name]
    squash = re.sub(r"[\s_\-]+", "", text.casefold())
    for value, label in choices.choices:
        if squash in (re.sub(r"[\s_\-]+", "", value), re.sub(r"[\s_\-]+", "", label.casefold())):
            return value
    return CHOICE_ALIASES[name].get(squash)


def _choices_listed(name: str) -> str:
    return ", ".join(f"{label} ({value})" for value, label in CHOICE_FIELDS[name].choices)


def _article(name: str) -> str:
    return {"employment_type": "an employment type", "status": "a status"}[name]


_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]00:00(?::00(?:\.0+)?)?)?$")
_NUMERIC = re.compile(r"^(\d{1,2})([./-])(\d{1,2})\2(\d{2,4})$")
_MONTH_NAME_FORMATS = (
    "%d %b %Y",
    "%d %B %Y",
    "%d-%b-%Y",
    "%d-%B-%Y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%b %d %Y",
    "%B %d %Y",
    "%d. %B %Y",
    "%d. %b %Y",
)


def parse_date(value, date_format: str) -> datetime.date:
    """A date from a cell: an XLSX date, ISO text, a month written as a word, or the declared day/month order.

    Raises ValueError with the reason in plain words (the sentence shown to the person).
    """
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    text = str(value).strip()
    iso = _ISO.match(text)
    if iso:
        return _date(int(iso[1]), int(iso[2]), int(iso[3]), text)
    if any(c.isalpha() for c in text):  # a month written as a word ("1 Mar 2027"); strptime is slow: only then
        for fmt in _MONTH_NAME_FORMATS:
            try:
                return datetime.datetime.strptime(text, fmt).date()
            except ValueError:
                continue
    numeric = _NUMERIC.match(text)
    how = "Write dates as 2027-03-01 (YYYY-MM-DD), or choose the file's date format on the import form."
    if not numeric:
        if text.isdigit():
            raise ValueError(f"This is a number, not a date (a spreadsheet date saved as a number?). {how}")
        raise ValueError(f"This is not a date Portal can read. {how}")
    first, second, year_text = int(numeric[1]), int(numeric[3]), numeric[4]
    if len(year_text) != 4:
        raise ValueError(f"The year has {len(year_text)} digits; write it with four (e.g. 2027). {how}")
    year = int(year_text)
    if date_format == "dmy":
        if second > 12 and first <= 12:
            raise ValueError(
                f"Month {second} does not exist. The import form says the day comes first (DD/MM/YYYY); this date "
                "looks month-first: choose “Month first” if the whole file writes dates that way."
            )
        return _date(year, second, first, text)
    if date_format == "mdy":
        if first > 12 and second <= 12:
            raise ValueError(
                f"Month {first} does not exist. The import form says the month comes first (MM/DD/YYYY); this date "
                "looks day-first: choose “Day first” if the whole file writes dates that way."
            )
        return _date(year, first, second, text)
    if first > 12 and second <= 12:
        return _date(year, second, first, text)
    if second > 12 and first <= 12:
        return _date(year, first, second, text)
    if first == second:
        return _date(year, first, second, text)
    raise ValueError(
        f"This could be {_long(year, second, first)} (day first) or {_long(year, first, second)} (month first), and "
        "Portal does not guess. Choose the file's date format on the import form (Day first or Month first), or "
        "write the date as YYYY-MM-DD."
    )


def _long(year: int, month: int, day: int) -> str:
    try:
        return f"{day} {datetime.date(year, month, day):%B %Y}"
    except ValueError:
        return f"{day}/{month}/{year}"


def _date(year: int, month: int, day: int, text: str) -> datetime.date:
    try:
        return datetime.date(year, month, day)
    except ValueError:
        raise ValueError(
            f"There is no such day ({year:04d}-{month:02d}-{day:02d} does not exist). Write dates as YYYY-MM-DD."
        ) from None


def _display(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.date):
        return value.isoformat()
    if hasattr(value, "code"):
        return value.code
    return str(value)


def _shown(value) -> str:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()[:10] if not isinstance(value, datetime.datetime) else value.isoformat(sep=" ")
    return "" if value is None else str(value)


def _and(items: list[str]) -> str:
    items = [f"“{item}”" for item in items]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _rows_named(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"Row {numbers[0]}"
    return "Rows " + ", ".join(str(n) for n in numbers[:-1]) + f" and {numbers[-1]}"


# --- Template ------------------------------------------------------------------------------------


def template_rows() -> tuple[list[str], list[list[str]], list[tuple[str, str]]]:
    """The template file: headers, two example rows, and the valid values of each coded column."""
    headers = [column.header for column in COLUMNS]
    department = Department.objects.order_by("name").first()
    location = Location.objects.order_by("name").first()
    role = Role.objects.order_by("name").first()
    example = [
        "100123",
        "Ada",
        "Lovelace",
        "",
        "ada.lovelace@example.com",
        "Engineer",
        department.code if department else "",
        location.code if location else "",
        "",
        role.code if role else "",
        EmploymentType.FULL_TIME.label,
        EmployeeStatus.PRE_HIRE.label,
        "2027-03-01",
        "",
    ]
    second = [
        "100124",
        "Alan",
        "Turing",
        "Al",
        "alan.turing@example.com",
        "Analyst",
        department.name if department else "",
        location.name if location else "",
        "100123",
        role.name if role else "",
        EmploymentType.CONTRACTOR.label,
        "",
        "2027-03-15",
        "2028-03-14",
    ]
    valid = []
    for name, model in REFERENCE_FIELDS.items():
        entries = model.objects.order_by("name").values_list("code", "name")
        valid.append((COLUMNS_BY_FIELD[name].header, "; ".join(f"{code} = {label}" for code, label in entries)))
    for name in CHOICE_FIELDS:
        valid.append((COLUMNS_BY_FIELD[name].header, "; ".join(label for _, label in CHOICE_FIELDS[name].choices)))
    return headers, [example, second], valid
