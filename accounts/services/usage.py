"""Usage feeds: sign-in logs and usage files set `Entitlement.last_used_at`.

Three readers turn a file into sign-ins (`UsageEvent`): Okta's System Log (JSON array or JSON lines,
`user.authentication.sso` events), Entra ID's sign-in log (the portal's CSV or JSON download, or a
Graph `{"value": [...]}` page) and one application's CSV (email, last active). The API passes
`(application name, email, time)` tuples to `usage_record` instead. Either way the sign-ins are
aggregated to the latest time per (application, person), in memory bounded by distinct pairs, and
applied in one transaction: a last use only moves forward, so reading the same log again changes
nothing. What matches no application (name or alias, any case), no employee (work email, any case)
or no live entitlement is kept as `UnmatchedUsage` for shadow-IT discovery.

A bad file (not JSON, a record without its user or time, a time that is not ISO 8601) is refused
with the line or row and what is wrong, before anything is written.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.conf import usage_setting
from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    Application,
    Employee,
    Entitlement,
    UnmatchedUsage,
    UsageImport,
    UsageSource,
)
from portal.audit import audit_record
from portal.models import AuditEvent
from portal.queue import enqueue_on_commit

logger = logging.getLogger(__name__)

IMPORT_TASK = "accounts.tasks.usage_import_run"
# Queue timeout of one import: a million sign-ins take well under a minute, a slow disk or database more.
IMPORT_TASK_TIMEOUT = 3600
# How often a reading worker writes its progress (and heartbeat), in seconds.
PROGRESS_EVERY = 1.0
# A JSON record longer than this is refused (a real sign-in event is a few kilobytes).
MAX_RECORD_CHARS = 1 << 20
# Rows per statement when applying.
CHUNK = 300

OKTA_SSO = "user.authentication.sso"


class UsageFileError(ValueError):
    """The file (or API batch) cannot be read as the source says: the message names the line or row and why."""


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One sign-in: the application's names as the log gives them, the user, when; `where` for errors."""

    app_names: tuple[str, ...]
    user: str
    at: datetime.datetime | None  # None: a row that says "never used" (nothing to apply)
    where: str


@dataclass
class UsageResult:
    events_read: int = 0
    events_used: int = 0
    pairs: int = 0
    entitlements_updated: int = 0
    unmatched: int = 0


Progress = Callable[[int, int], None]  # (units read so far, events read so far)


# --- Reading ----------------------------------------------------------------------------------------


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read from it (the progress bar's numerator)."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


def _text(raw: _CountingReader) -> io.TextIOWrapper:
    # utf-8-sig: Entra's CSV download starts with a byte-order mark.
    return io.TextIOWrapper(io.BufferedReader(raw, 1 << 16), encoding="utf-8-sig", newline="")


def parse_when(value, where: str, column: str) -> datetime.datetime:
    """An ISO 8601 time (`2024-05-01T09:30:00Z`, `2024-05-01 09:30`, or a bare date: midnight), in UTC when
    it names no offset. Anything else is refused: `01/03/2024` could be either of two days."""
    text = str(value).strip() if value is not None else ""
    if not text:
        raise UsageFileError(f"{where}: {column} is empty; give the time of the sign-in (ISO 8601).")
    try:
        if len(text) == 10:
            moment = datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time())
        else:
            moment = datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text))
    except ValueError:
        raise UsageFileError(
            f"{where}: {column} {text[:40]!r} is not a date and time in ISO 8601 form, e.g. 2024-05-01T09:30:00Z "
            "(a day-first or month-first date is never guessed)."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    if moment > timezone.now() + usage_setting("FUTURE_TOLERANCE"):
        raise UsageFileError(f"{where}: {column} {text[:40]!r} is in the future; check the file's clock or format.")
    return moment


class _JsonStream:
    """Records of a JSON document read incrementally: an array of objects, a Graph page (`{"value": [...]}`)
    or JSON lines. Holds one record (and a read-ahead of 64 KiB) at a time; counts lines for messages."""

    def __init__(self, text: IO[str]):
        self.text = text
        self.buf = ""
        self.pos = 0
        self.line = 1  # line of buf[pos]
        self.eof = False
        self.decoder = json.JSONDecoder()

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self.text.read(1 << 16)
        except UnicodeDecodeError:
            raise UsageFileError(f"line {self.line} or soon after: the file is not UTF-8 text.") from None
        if not chunk:
            self.eof = True
            return False
        # Offsets into the buffer change here (and only when something was read).
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def _advance(self, to: int) -> None:
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def _peek(self) -> str:
        """The next character that is not white space ("" at the end), without consuming it."""
        while True:
            match = re.compile(r"\S").search(self.buf, self.pos)
            if match:
                self._advance(match.start())
                return self.buf[self.pos]
            self._advance(len(self.buf))
            if not self._fill():
                return ""

    def _value(self):
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if not self.eof and len(self.buf) - self.pos < MAX_RECORD_CHARS and self._fill():
                    continue
                line = self.line + self.buf.count("\n", self.pos, exc.pos)
                raise UsageFileError(f"line {line}: not valid JSON ({exc.msg}).") from None
            if end == len(self.buf) and not self.eof and not isinstance(value, dict | list) and self._fill():
                continue  # a number cut by the read-ahead
            start = self.line
            self._advance(end)
            return start, value

    def records(self) -> Iterator[tuple[int, dict]]:
        first = self._peek()
        if first == "[":
            yield from self._array()
        elif first == "{":
            while len(self.buf) - self.pos < 4096 and self._fill():
                pass
            page = re.compile(r'\{\s*"(?:@odata\.[A-Za-z]+|value)"').match(self.buf, self.pos)
            if page:
                found = re.compile(r'"value"\s*:\s*\[').search(self.buf, self.pos)
                while found is None and len(self.buf) - self.pos < MAX_RECORD_CHARS and self._fill():
                    found = re.compile(r'"value"\s*:\s*\[').search(self.buf, self.pos)
                if found is None:
                    raise UsageFileError(f'line {self.line}: a Graph page without a "value": [...] list of sign-ins.')
                self._advance(found.end() - 1)
                yield from self._array()
                return
            while self._peek():
                line, value = self._value()
                yield line, self._object(line, value)
        elif first == "":
            raise UsageFileError("The file is empty.")
        else:
            raise UsageFileError(
                f"line {self.line}: not JSON: expected a JSON array ([...]) or one JSON object per line, "
                f"found {self.buf[self.pos : self.pos + 20]!r}."
            )

    def _array(self) -> Iterator[tuple[int, dict]]:
        self._advance(self.pos + 1)  # "["
        if self._peek() == "]":
            return
        while True:
            if self._peek() == "":
                raise UsageFileError(f"line {self.line}: the file ends inside the JSON array (cut short?).")
            line, value = self._value()
            yield line, self._object(line, value)
            after = self._peek()
            if after == ",":
                self._advance(self.pos + 1)
            elif after == "]":
                self._advance(self.pos + 1)
                return
            elif after == "":
                raise UsageFileError(f"line {self.line}: the file ends inside the JSON array (cut short?).")
            else:
                raise UsageFileError(f"line {self.line}: expected , or ] after a record, found {after!r}.")

    @staticmethod
    def _object(line: int, value) -> dict:
        if not isinstance(value, dict):
            raise UsageFileError(f"line {line}: a sign-in record is a JSON object, not {type(value).__name__}.")
        return value


def _get(record: dict, *path: str):
    for key in path:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


def okta_events(text: IO[str]) -> Iterator[UsageEvent | None]:
    """Okta System Log events (`/api/v1/logs`, or the admin console's export), as an array or JSON lines.

    Only successful `user.authentication.sso` events are sign-ins to an application: the user is
    `actor.alternateId` (their Okta login, normally the work email), the application the `AppInstance`
    target (its `displayName` and `alternateId`, either may match), the time `published`. Other events
    yield None (counted as read).
    """
    for line, record in _JsonStream(text).records():
        where = f"line {line}"
        if record.get("eventType") != OKTA_SSO:
            if "eventType" not in record:
                raise UsageFileError(f"{where}: not an Okta System Log event (no eventType).")
            yield None
            continue
        if str(_get(record, "outcome", "result") or "SUCCESS").upper() != "SUCCESS":
            yield None
            continue
        user = _get(record, "actor", "alternateId")
        if not isinstance(user, str) or not user.strip():
            raise UsageFileError(f"{where}: a {OKTA_SSO} event without actor.alternateId (the user's login).")
        targets = record.get("target") or []
        apps = [t for t in targets if isinstance(t, dict) and t.get("type") == "AppInstance"]
        if not apps:
            raise UsageFileError(f"{where}: a {OKTA_SSO} event without an AppInstance target (the application).")
        names = tuple(
            str(n).strip() for n in (apps[0].get("displayName"), apps[0].get("alternateId")) if n and str(n).strip()
        )
        if not names:
            raise UsageFileError(f"{where}: the AppInstance target has neither displayName nor alternateId.")
        yield UsageEvent(names, user.strip(), parse_when(record.get("published"), where, "published"), where)


# Column names as Entra writes them: the admin center's CSV download ("Date (UTC)", "Username",
# "Application", "Status"), Log Analytics exports (TimeGenerated, UserPrincipalName, AppDisplayName,
# ResultType) and the Graph names, compared without regard to case, spaces or underscores.
ENTRA_TIME = ("date (utc)", "date", "createddatetime", "timegenerated [utc]", "timegenerated")
ENTRA_USER = ("username", "userprincipalname", "user principal name", "sign-in identifier")
ENTRA_APP = ("application", "appdisplayname", "app display name")
ENTRA_STATUS = ("status", "resulttype", "errorcode", "sign-in error code")


def _norm(name: str) -> str:
    return " ".join(str(name or "").replace("_", " ").split()).lower()


def _columns(header: list[str], wanted: dict[str, tuple[str, ...]], where: str) -> dict[str, int]:
    found = {_norm(h).replace(" ", ""): i for i, h in reversed(list(enumerate(header)))}
    found.update({_norm(h): i for i, h in reversed(list(enumerate(header)))})
    columns, missing = {}, []
    for role, names in wanted.items():
        index = next((found[n] for n in names if n in found), None)
        if index is None and not role.endswith("?"):
            missing.append(f"{names[0]!r} (or {', '.join(repr(n) for n in names[1:])})")
        elif index is not None:
            columns[role.rstrip("?")] = index
    if missing:
        shown = ", ".join(repr(h.strip()) for h in header[:12]) + (" ..." if len(header) > 12 else "")
        raise UsageFileError(f"{where}: no column {'; no column '.join(missing)}. The columns are: {shown}.")
    return columns


def _sniff_delimiter(first_line: str) -> str:
    return ";" if first_line.count(";") > first_line.count(",") else ","


def _csv_rows(text: IO[str]) -> Iterator[tuple[int, list[str]]]:
    """(row number as a spreadsheet counts it, cells) for a CSV with `,` or `;`; blank rows skipped."""
    try:
        head = text.readline()
    except UnicodeDecodeError:
        raise UsageFileError("row 1: the file is not UTF-8 text.") from None
    if not head.strip():
        raise UsageFileError("The file is empty (no header row).")
    reader = csv.reader(_chain(head, text), delimiter=_sniff_delimiter(head), strict=True)
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield reader.line_num, cells
    except csv.Error as exc:
        raise UsageFileError(f"row {reader.line_num}: not valid CSV ({exc}).") from None
    except UnicodeDecodeError:
        raise UsageFileError(f"row {reader.line_num + 1} or soon after: the file is not UTF-8 text.") from None


def _chain(head: str, rest: IO[str]) -> Iterator[str]:
    yield head
    yield from rest


def _cell(cells: list[str], index: int) -> str:
    return cells[index].strip() if index < len(cells) else ""


def entra_events(text: IO[str]) -> Iterator[UsageEvent | None]:
    """Entra ID sign-ins: the admin center's CSV or JSON download, a Log Analytics CSV, or a Graph page.

    User: `Username` / `userPrincipalName`; application: `Application` / `appDisplayName`; time:
    `Date (UTC)` / `createdDateTime`. Failed sign-ins (`Status` other than Success, or a non-zero
    error code) yield None.
    """
    first = ""
    while not first:
        try:
            char = text.read(1)
        except UnicodeDecodeError:
            raise UsageFileError("line 1: the file is not UTF-8 text.") from None
        if not char:
            raise UsageFileError("The file is empty.")
        if not char.isspace():
            first = char
    stream = _Prefixed(first, text)
    if first in "[{":
        for line, record in _JsonStream(stream).records():
            where = f"line {line}"
            error = _get(record, "status", "errorCode")
            if error not in (None, 0, "0"):
                yield None
                continue
            user = record.get("userPrincipalName")
            app = record.get("appDisplayName")
            if not isinstance(user, str) or not user.strip():
                raise UsageFileError(f"{where}: a sign-in without userPrincipalName.")
            if not isinstance(app, str) or not app.strip():
                raise UsageFileError(f"{where}: a sign-in without appDisplayName.")
            yield UsageEvent(
                (app.strip(),), user.strip(), parse_when(record.get("createdDateTime"), where, "createdDateTime"), where
            )
        return
    rows = _csv_rows(stream)
    for number, header in rows:
        columns = _columns(
            header, {"time": ENTRA_TIME, "user": ENTRA_USER, "app": ENTRA_APP, "status?": ENTRA_STATUS}, f"row {number}"
        )
        break
    else:
        raise UsageFileError("The file is empty (no header row).")
    labels = {role: header[i].strip() for role, i in columns.items()}
    for number, cells in rows:
        where = f"row {number}"
        if "status" in columns:
            status = _cell(cells, columns["status"]).lower()
            if status not in ("", "success", "0"):
                yield None
                continue
        user, app = _cell(cells, columns["user"]), _cell(cells, columns["app"])
        if not user:
            raise UsageFileError(f"{where}: {labels['user']} is empty.")
        if not app:
            raise UsageFileError(f"{where}: {labels['app']} is empty.")
        yield UsageEvent((app,), user, parse_when(_cell(cells, columns["time"]), where, labels["time"]), where)


class _Prefixed(io.TextIOBase):
    """A text stream with one character pushed back in front (what `entra_events` peeked at)."""

    def __init__(self, first: str, rest: IO[str]):
        self._first, self._rest = first, rest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> str:
        head, self._first = self._first, ""
        if size is not None and size >= 0:
            return head + self._rest.read(max(size - len(head), 0))
        return head + self._rest.read()

    def readline(self, size: int = -1) -> str:
        head, self._first = self._first, ""
        return head + self._rest.readline()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


APP_CSV_USER = ("email", "e-mail", "work email", "user", "username", "login", "user email", "email address")
APP_CSV_WHEN = (
    "last active",
    "last activity",
    "last used",
    "last login",
    "last sign-in",
    "last sign in",
    "last seen",
    "last active at",
    "last login at",
)


def app_csv_events(text: IO[str], *, application: Application) -> Iterator[UsageEvent | None]:
    """One application's own usage export: a header row with an email and a "last active" column
    (`;` or `,`). An empty last-active cell means "never used" and moves nothing."""
    rows = _csv_rows(text)
    for number, header in rows:
        columns = _columns(header, {"user": APP_CSV_USER, "time": APP_CSV_WHEN}, f"row {number}")
        break
    else:
        raise UsageFileError("The file is empty (no header row).")
    labels = {role: header[i].strip() for role, i in columns.items()}
    for number, cells in rows:
        where = f"row {number}"
        user = _cell(cells, columns["user"])
        if not user:
            raise UsageFileError(f"{where}: {labels['user']} is empty.")
        when = _cell(cells, columns["time"])
        yield UsageEvent((application.name,), user, parse_when(when, where, labels["time"]) if when else None, where)


def tuple_events(items: Iterable) -> Iterator[UsageEvent]:
    """`(application name, email, time)` triples (the API's batches); `time` a datetime or ISO 8601 text."""
    for number, item in enumerate(items, start=1):
        where = f"item {number}"
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise UsageFileError(f"{where}: give [application, email, time], not {str(item)[:60]!r}.")
        app, user, when = item
        if not isinstance(app, str) or not app.strip():
            raise UsageFileError(f"{where}: the application name is empty.")
        if not isinstance(user, str) or not user.strip():
            raise UsageFileError(f"{where}: the email is empty.")
        if isinstance(when, datetime.datetime):
            if timezone.is_naive(when):
                when = when.replace(tzinfo=datetime.UTC)
            if when > timezone.now() + usage_setting("FUTURE_TOLERANCE"):
                raise UsageFileError(f"{where}: the time {when.isoformat()} is in the future.")
        else:
            when = parse_when(when, where, "the time")
        yield UsageEvent((app.strip(),), user.strip(), when, where)


# --- Aggregating and applying -------------------------------------------------------------------------


def _application_keys() -> dict[str, int]:
    """Every application's name and aliases, lower-cased, to its id."""
    keys: dict[str, int] = {}
    for pk, name, aliases in Application.objects.values_list("pk", "name", "aliases"):
        for key in [name, *(aliases if isinstance(aliases, list) else [])]:
            if isinstance(key, str) and key.strip():
                keys.setdefault(key.strip().lower(), pk)
    return keys


class _Aggregate:
    """The latest sign-in per (application, user), and for pairs already listed as unmatched the sign-ins
    newer than their `last_seen`. Memory: one small entry per distinct pair, whatever the number of events."""

    def __init__(self, source: str, application: Application | None):
        self.app_keys = {} if application else _application_keys()
        self.fixed_app = application.pk if application else None
        self.app_names: dict[str, str] = {}  # unknown application key -> its name as first seen
        self.known = {
            (a, u): last
            for a, u, last in UnmatchedUsage.objects.filter(source=source).values_list(
                "app_key", "user_key", "last_seen"
            )
        }
        # (application id or unknown name key, user key) -> [latest, earliest, new sign-ins, user as written]
        self.pairs: dict[tuple[int | str, str], list] = {}
        self.read = 0
        self.used = 0

    def add(self, event: UsageEvent | None) -> None:
        self.read += 1
        if event is None or event.at is None:
            return
        self.used += 1
        if self.fixed_app is not None:
            app: int | str = self.fixed_app
        else:
            app = next((self.app_keys[n.lower()] for n in event.app_names if n.lower() in self.app_keys), None)
            if app is None:
                app = event.app_names[0].lower()
                self.app_names.setdefault(app, event.app_names[0])
        user = event.user.lower()
        entry = self.pairs.get((app, user))
        if entry is None:
            self.pairs[(app, user)] = [event.at, event.at, 0, event.user]
            entry = self.pairs[(app, user)]
        else:
            entry[0] = max(entry[0], event.at)
            entry[1] = min(entry[1], event.at)
        seen = self.known.get((self._app_key(app), user))
        if seen is None or event.at > seen:
            entry[2] += 1

    def _app_key(self, app: int | str) -> str:
        return f"#{app}" if isinstance(app, int) else app


def _chunks(items: list, size: int = CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _apply(agg: _Aggregate, *, source: str, usage_import: UsageImport) -> UsageResult:
    """Move last uses forward and list what matched nothing, in one transaction; updates are forward-only."""
    result = UsageResult(events_read=agg.read, events_used=agg.used, pairs=len(agg.pairs))
    employee_ids: dict[str, int] = {}
    for chunk in _chunks(sorted({user for _, user in agg.pairs}), 500):
        employee_ids.update(
            Employee.objects.annotate(email_key=Lower("work_email"))
            .filter(email_key__in=chunk)
            .values_list("email_key", "pk")
        )
    with transaction.atomic():
        live: dict[tuple[int, int], tuple[int, datetime.datetime | None]] = {}
        for chunk in _chunks(sorted(set(employee_ids.values())), 500):
            for pk, employee, app, last in Entitlement.objects.filter(
                employee_id__in=chunk, status__in=LIVE_ENTITLEMENT_STATUSES
            ).values_list("pk", "employee_id", "application_id", "last_used_at"):
                live[(employee, app)] = (pk, last)
        forward: list[tuple[int, datetime.datetime]] = []
        unmatched: list[tuple] = []
        Reason = UnmatchedUsage.Reason
        for (app, user), (latest, earliest, new, written) in agg.pairs.items():
            employee = employee_ids.get(user)
            if not isinstance(app, int):
                reason = Reason.NO_APPLICATION
            elif employee is None:
                reason = Reason.NO_PERSON
            elif (employee, app) not in live:
                reason = Reason.NO_ACCESS
            else:
                pk, last = live[(employee, app)]
                if last is None or latest > last:
                    forward.append((pk, latest))
                continue
            unmatched.append((app, user, written, latest, earliest, new, reason, employee))
        for chunk in _chunks(forward):
            # The guard in each WHEN keeps it forward-only even against an import running at the same time.
            Entitlement.objects.filter(pk__in=[pk for pk, _ in chunk]).update(
                last_used_at=Case(
                    *[
                        When(Q(pk=pk) & (Q(last_used_at__isnull=True) | Q(last_used_at__lt=at)), then=Value(at))
                        for pk, at in chunk
                    ],
                    default="last_used_at",
                )
            )
        result.entitlements_updated = len(forward)
        _unmatched_write(agg, unmatched, source=source, usage_import=usage_import)
        result.unmatched = len(unmatched)
    return result


def _unmatched_write(agg: _Aggregate, unmatched: list[tuple], *, source: str, usage_import: UsageImport) -> None:
    """Add new unmatched pairs, widen the window (and add the new sign-ins) of known ones; touch nothing else."""
    names = dict(Application.objects.values_list("pk", "name"))
    by_app: dict[str, list[tuple]] = {}
    for item in unmatched:
        by_app.setdefault(agg._app_key(item[0]), []).append(item)
    create: list[UnmatchedUsage] = []
    update: list[UnmatchedUsage] = []
    for app_key, items in by_app.items():
        for chunk in _chunks(items, 500):
            existing = {
                row.user_key: row
                for row in UnmatchedUsage.objects.filter(
                    source=source, app_key=app_key, user_key__in=[item[1] for item in chunk]
                )
            }
            for app, user, written, latest, earliest, new, reason, employee in chunk:
                application = app if isinstance(app, int) else None
                row = existing.get(user)
                if row is None:
                    create.append(
                        UnmatchedUsage(
                            source=source,
                            app_name=(names.get(app, "") if application else agg.app_names.get(app, app))[:255],
                            app_key=app_key[:255],
                            user=written[:254],
                            user_key=user[:254],
                            application_id=application,
                            employee_id=employee,
                            reason=reason,
                            count=new,
                            first_seen=earliest,
                            last_seen=latest,
                            last_import=usage_import if usage_import.pk else None,
                        )
                    )
                    continue
                changed = (
                    new
                    or latest > row.last_seen
                    or earliest < row.first_seen
                    or row.reason != reason
                    or row.employee_id != employee
                )
                if changed:
                    row.count += new
                    row.last_seen = max(row.last_seen, latest)
                    row.first_seen = min(row.first_seen, earliest)
                    row.reason, row.employee_id = reason, employee
                    row.last_import = usage_import if usage_import.pk else None
                    update.append(row)
    UnmatchedUsage.objects.bulk_create(create, batch_size=CHUNK)
    UnmatchedUsage.objects.bulk_update(
        update, ["count", "last_seen", "first_seen", "reason", "employee", "last_import"], batch_size=CHUNK
    )


# --- Entry points ------------------------------------------------------------------------------------


def _events_for(usage_import: UsageImport, text: IO[str]) -> Iterator[UsageEvent | None]:
    if usage_import.source == UsageSource.OKTA:
        return okta_events(text)
    if usage_import.source == UsageSource.ENTRA:
        return entra_events(text)
    if usage_import.source == UsageSource.APP_CSV:
        return app_csv_events(text, application=usage_import.application)
    raise UsageFileError(f"A {usage_import.get_source_display()} import has no file to read.")


def usage_aggregate(
    *, source: str, events: Iterable[UsageEvent | None], application: Application | None = None, progress=None
) -> _Aggregate:
    """Read every event into the per-pair aggregate, writing nothing: a bad one raises `UsageFileError`.
    `progress(events_read)` is called about once a second."""
    agg = _Aggregate(source, application)
    next_report = time.monotonic() + PROGRESS_EVERY
    for event in events:
        agg.add(event)
        if progress is not None and time.monotonic() >= next_report:
            progress(agg.read)
            next_report = time.monotonic() + PROGRESS_EVERY
    return agg


def _user(acting_user):
    return acting_user if getattr(acting_user, "pk", None) else None


def _finish(usage_import: UsageImport, result: UsageResult, acting_user) -> None:
    usage_import.status = UsageImport.Status.DONE
    usage_import.finished_at = timezone.now()
    usage_import.events_read = result.events_read
    usage_import.events_used = result.events_used
    usage_import.pairs = result.pairs
    usage_import.entitlements_updated = result.entitlements_updated
    usage_import.unmatched = result.unmatched
    usage_import.bytes_read = usage_import.file_size
    usage_import.error = ""
    usage_import.save()
    audit_record(
        action=AuditEvent.Action.USAGE_IMPORTED,
        target=usage_import,
        acting_user=acting_user,
        detail={
            "source": usage_import.source,
            "file": usage_import.file_name,
            "application": usage_import.application.name if usage_import.application_id else None,
            "events_read": result.events_read,
            "events_used": result.events_used,
            "entitlements_updated": result.entitlements_updated,
            "unmatched": result.unmatched,
        },
    )


def usage_record(
    *,
    events: Iterable,
    acting_user,
    source: str = UsageSource.API,
    application: Application | None = None,
) -> UsageImport:
    """Record last uses given as `(application name, email, time)` triples: the REST API's entry point.

    The same rules as a file: forward only, unmatched pairs listed, and a bad triple (named by its
    position, "item 3: ...") refuses the whole batch with `UsageFileError`, nothing written. With
    `application`, every triple is about that application whatever name it gives. One transaction:
    meant for batches a request can carry (files go through `usage_import_create`). Returns the
    finished `UsageImport` row, with its counts.
    """
    with transaction.atomic():
        usage_import = UsageImport.objects.create(
            source=source,
            application=application,
            status=UsageImport.Status.READING,
            created_by=_user(acting_user),
            started_at=timezone.now(),
        )
        agg = usage_aggregate(source=source, events=tuple_events(events), application=application)
        _finish(usage_import, _apply(agg, source=source, usage_import=usage_import), acting_user)
    return usage_import


FILE_SOURCES = (UsageSource.OKTA, UsageSource.ENTRA, UsageSource.APP_CSV)


def check_source(source: str, application: Application | None) -> None:
    if source not in FILE_SOURCES:
        raise ValidationError({"source": "Choose Okta, Entra ID or one application's CSV."})
    if source == UsageSource.APP_CSV and application is None:
        raise ValidationError({"application": "Choose the application this CSV is about."})
    if source != UsageSource.APP_CSV and application is not None:
        raise ValidationError(
            {"application": "Leave the application empty for a sign-in log: each sign-in names its application."}
        )


def usage_import_create(*, source: str, uploaded_file, application: Application | None, acting_user) -> UsageImport:
    """Keep an uploaded usage file and queue its import (`usage_import_run`) once this transaction commits.

    Refuses (ValidationError, nothing kept) a wrong source/application pairing, an empty file and one above
    `PORTAL_USAGE_MAX_UPLOAD_MB`. The file waits in `PORTAL_USAGE_UPLOAD_DIR` and is deleted once read.
    """
    check_source(source, application)
    size = getattr(uploaded_file, "size", 0) or 0
    if not size:
        raise ValidationError({"file": "The file is empty."})
    limit = usage_setting("MAX_UPLOAD_MB")
    if size > limit * 1024 * 1024:
        raise ValidationError({"file": f"The file is {size / 1048576:.0f} MB; the limit is {limit} MB."})
    name = str(getattr(uploaded_file, "name", "") or "upload")[-255:]
    usage_import = UsageImport(
        source=source, application=application, file_name=name, file_size=size, created_by=_user(acting_user)
    )
    usage_import.file.save(re.sub(r"[^A-Za-z0-9._-]", "_", name)[-80:] or "upload", uploaded_file, save=False)
    try:
        with transaction.atomic():
            usage_import.save()
            enqueue_on_commit(IMPORT_TASK, usage_import.pk, timeout=IMPORT_TASK_TIMEOUT)
    except BaseException:
        usage_import.file.delete(save=False)
        raise
    return usage_import


def _claim(import_id: int, now: datetime.datetime) -> UsageImport | None:
    stale = now - usage_setting("STALE_AFTER")
    Status = UsageImport.Status
    claimed = (
        UsageImport.objects.filter(pk=import_id)
        .filter(Q(status=Status.PENDING) | Q(status=Status.READING, heartbeat_at__lt=stale))
        .update(
            status=Status.READING,
            started_at=now,
            heartbeat_at=now,
            bytes_read=0,
            events_read=0,
            attempts=F("attempts") + 1,
        )
    )
    return UsageImport.objects.get(pk=import_id) if claimed else None


def _fail(usage_import: UsageImport, message: str, mine) -> None:
    logger.info("Usage import %s refused: %s", usage_import.pk, message)
    mine.update(status=UsageImport.Status.FAILED, finished_at=timezone.now(), error=message[:4000])
    _discard_file(usage_import)


def _discard_file(usage_import: UsageImport) -> None:
    if usage_import.file:
        try:
            usage_import.file.delete(save=False)
        except OSError:
            logger.warning("Usage import %s: could not delete %s", usage_import.pk, usage_import.file.name)
        UsageImport.objects.filter(pk=usage_import.pk).update(file="")


def usage_import_read(*, usage_import: UsageImport, binary: IO[bytes], mine=None, acting_user=None, progress=None):
    """Read `binary` as `usage_import.source` says and apply it; mark the row done (or failed, with the reason)."""
    mine = mine if mine is not None else UsageImport.objects.filter(pk=usage_import.pk)
    counter = _CountingReader(binary)
    text = _text(counter)

    def report(events: int) -> None:
        mine.update(bytes_read=counter.count, events_read=events, heartbeat_at=timezone.now())
        if progress is not None:
            progress(counter.count, events)

    try:
        # Read outside any transaction: the progress is visible and nobody waits on a lock meanwhile.
        agg = usage_aggregate(
            source=usage_import.source,
            events=_events_for(usage_import, text),
            application=usage_import.application,
            progress=report,
        )
    except UsageFileError as exc:
        _fail(usage_import, str(exc), mine)
        return "failed"
    report(agg.read)
    with transaction.atomic():
        # Locked, and still this claim's: a worker presumed dead that wakes up applies nothing.
        if not mine.select_for_update().filter(status=UsageImport.Status.READING).exists():
            return "superseded"
        usage_import.refresh_from_db()
        result = _apply(agg, source=usage_import.source, usage_import=usage_import)
        _finish(usage_import, result, acting_user or usage_import.created_by)
    _discard_file(usage_import)
    return "done"


def usage_import_run(*, import_id: int) -> str:
    """The queue task: claim the import, read its file, apply it; "done", "failed" (the reason on the row),
    "not-claimed" (another worker has it, or it is finished) or "superseded". A second delivery does nothing;
    a worker that died mid-file leaves the import to be read again from the start after `STALE_AFTER`
    (nothing was written: the file is read before the single writing transaction)."""
    usage_import = _claim(import_id, timezone.now())
    if usage_import is None:
        return "not-claimed"
    mine = UsageImport.objects.filter(pk=import_id, attempts=usage_import.attempts)
    try:
        binary = usage_import.file.open("rb")
    except (OSError, ValueError):
        _fail(
            usage_import,
            "The uploaded file is not in this worker's upload directory (PORTAL_USAGE_UPLOAD_DIR): it must be "
            "a directory every worker host shares. Upload the file again.",
            mine,
        )
        return "failed"
    with binary:
        return usage_import_read(usage_import=usage_import, binary=binary, mine=mine)


def usage_imports_sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Every minute: enqueue again the imports a lost queue message (pending too long) or a dead worker
    (reading, silent past `STALE_AFTER`) left behind. The claim in `usage_import_run` makes a duplicate harmless."""
    now = now or timezone.now()
    Status = UsageImport.Status
    lost = list(
        UsageImport.objects.filter(status=Status.PENDING, created_at__lt=now - usage_setting("QUEUED_DEADLINE"))
        .exclude(heartbeat_at__gte=now - usage_setting("QUEUED_DEADLINE"))
        .values_list("pk", flat=True)[:100]
    )
    dead = list(
        UsageImport.objects.filter(status=Status.READING, heartbeat_at__lt=now - usage_setting("STALE_AFTER"))
        .exclude(file="")
        .values_list("pk", flat=True)[:100]
    )
    for pk in lost:
        # Stamped so the next sweep waits another QUEUED_DEADLINE before enqueueing it again.
        UsageImport.objects.filter(pk=pk).update(heartbeat_at=now)
    for pk in lost + dead:
        enqueue_on_commit(IMPORT_TASK, pk, timeout=IMPORT_TASK_TIMEOUT)
    return {"lost": len(lost), "dead": len(dead)}


def usage_import_path(*, source: str, path: str, application: Application | None, acting_user=None, progress=None):
    """Import a file on this host (the `usage_import` command): the same reading, in this process."""
    import os

    check_source(source, application)
    size = os.path.getsize(path)
    usage_import = UsageImport.objects.create(
        source=source,
        application=application,
        file_name=os.path.basename(path)[-255:],
        file_size=size,
        status=UsageImport.Status.READING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        attempts=1,
        created_by=_user(acting_user),
    )
    with open(path, "rb") as binary:
        usage_import_read(usage_import=usage_import, binary=binary, acting_user=acting_user, progress=progress)
    usage_import.refresh_from_db()
    return usage_import
