"""The retention purge: a leaver's personal data is anonymised `RETENTION_DAYS` after their last day.

The leave run only records the date; the daily schedule (`offboarding.tasks.purge_due`) purges
everyone due: every copy of what identified them, in every table (`retention_purge`), then the
connectors that can forget are told by queued tasks. Records stay. README: "Retention".
"""

import datetime
import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import (
    AccessRequest,
    ApprovalDelegation,
    ApprovalStep,
    Employee,
    EmployeeStatus,
)
from accounts.services import employees, provisioning
from offboarding import engine
from offboarding.conf import lifecycle_setting
from offboarding.models import (
    Assignee,
    ChangeRequest,
    ChecklistKind,
    ChecklistRun,
    Task,
)
from portal.history import set_history_user
from portal.models import AuditEventPersonal, OutboundEmail
from portal.personal_data import Replacements, personal_data_rewrite

logger = logging.getLogger(__name__)


def retention_purge_date(last_day: datetime.date) -> datetime.date:
    """The day a leaver's personal data is purged: the first day after `last_day` + `RETENTION_DAYS`."""
    return last_day + datetime.timedelta(days=lifecycle_setting("RETENTION_DAYS") + 1)


def retention_purge_record(*, run: ChecklistRun) -> dict:
    """Record on the leave run when the daily retention purge will anonymise the person.

    The purge itself is not part of the run (`retention_purge_due` does it), so the run closes
    once access, approvals and hardware are dealt with. Idempotent: writes only when the date
    is new (e.g. the last day was changed).
    """
    due = retention_purge_date(run.event_date).isoformat()
    with transaction.atomic():
        locked = ChecklistRun.objects.select_for_update().get(pk=run.pk)
        if locked.details.get("purge_due") != due:
            locked.details = {**locked.details, "purge_due": due}
            set_history_user(locked, None)
            locked.save(update_fields=["details"])
            run.details = locked.details
    return {
        "purge_due": due,
        "retention_days": lifecycle_setting("RETENTION_DAYS"),
        "note": "Anonymised on that day by the daily retention purge, outside this checklist.",
    }


PURGE_BATCH = 100


def retention_purge_due(
    *, now: datetime.datetime | None = None, batch_size: int = PURGE_BATCH, max_seconds: float | None = None
) -> dict[str, int]:
    """Anonymise every terminated employee whose last day + `RETENTION_DAYS` has passed. Runs daily.

    Takes them `batch_size` at a time, oldest last day first, each in its own transaction through
    `retention_purge` (acting user: none, i.e. the system; one PURGE audit event each). Stops
    after `max_seconds` (default: half the queue's task timeout; at least one batch is done) and
    leaves the rest to the next run. Idempotent and safe to run concurrently: a person already
    anonymised is skipped, and the employee row lock in `employee_anonymise` makes a concurrent
    purge of the same person a no-op. One failure is logged and counted; the others still go ahead.
    """
    now = now or timezone.now()
    if max_seconds is None:
        max_seconds = settings.Q_CLUSTER["timeout"] / 2
    deadline = time.monotonic() + max_seconds
    # Due: the purge date (last day + RETENTION_DAYS + 1) is today or earlier.
    last_day_before = timezone.localdate(now) - datetime.timedelta(days=lifecycle_setting("RETENTION_DAYS"))
    due = Employee.objects.filter(
        status=EmployeeStatus.TERMINATED, anonymised_at__isnull=True, end_date__lt=last_day_before
    ).order_by("end_date", "pk")
    counts = {"purged": 0, "already": 0, "errors": 0, "left": 0}
    failed: set[int] = set()
    while True:
        batch = list(due.exclude(pk__in=failed).values_list("pk", flat=True)[:batch_size])
        if not batch:
            break
        for employee in Employee.objects.filter(pk__in=batch).order_by("end_date", "pk"):
            try:
                outcome = retention_purge(employee=employee, acting_user=None)
            except Exception:  # noqa: BLE001 - one bad row must not stop the purge of the others
                logger.exception("Retention purge of employee %s failed", employee.pk)
                failed.add(employee.pk)
                counts["errors"] += 1
                continue
            counts["already" if outcome["already"] else "purged"] += 1
        if time.monotonic() > deadline:
            counts["left"] = due.exclude(pk__in=failed).count()
            break
    return counts


# Free text a person writes, by model: (model, field, who wrote it). Their copies of it are removed
# on purge, in the row and its history rows. One line per kind of text.
AUTHORED_TEXTS = (
    (AccessRequest, "justification", lambda employee, user_id: Q(employee=employee) | Q(requested_by=user_id)),
    (ApprovalStep, "comment", lambda employee, user_id: Q(decided_by=user_id)),
    (ApprovalDelegation, "reason", lambda employee, user_id: Q(delegator=employee) | Q(created_by=user_id)),
    (ChangeRequest, "reason", lambda employee, user_id: Q(requested_by=employee)),
    (Task, "note", lambda employee, user_id: Q(completed_by=user_id)),
)
# Where copies of that text land (audit details, run details, task texts, the admin log): a text she
# wrote is hunted there only, so someone else who wrote the same words keeps them.
AUTHORED_TEXT_COPIES = frozenset(
    {
        AuditEventPersonal._meta.label,  # the audit log's readable values (detail)
        ChecklistRun._meta.label,
        ChecklistRun.history.model._meta.label,
        Task._meta.label,
        Task.history.model._meta.label,
        "admin.LogEntry",
        OutboundEmail._meta.label,
    }
)
REMOVED_TEXT = "(removed by the retention purge)"
REMOVED_VALUE = "(removed)"


def _authored_texts_remove(employee: Employee) -> tuple[list[str], int]:
    """Replace every free text `employee` wrote (`AUTHORED_TEXTS`), in the rows and their history rows.

    Returns the texts as they were (to hunt their copies) and the number of rows changed.
    """
    texts: list[str] = []
    rows = 0
    for model, field, written_by in AUTHORED_TEXTS:
        authored = written_by(employee, employee.user_id or 0)  # no login: user id 0 matches nobody
        found = model._base_manager.filter(authored).exclude(**{field: ""}).exclude(**{field: REMOVED_TEXT})
        pairs = list(found.values_list("pk", field))
        ids = [pk for pk, _ in pairs]
        texts += [text for _, text in pairs]
        history = model.history.model
        texts += list(
            history._base_manager.filter(id__in=ids).exclude(**{field: ""}).values_list(field, flat=True).distinct()
        )
        rows += model._base_manager.filter(pk__in=ids).update(**{field: REMOVED_TEXT})
        rows += history._base_manager.filter(id__in=ids).exclude(**{field: ""}).update(**{field: REMOVED_TEXT})
    return sorted({t for t in texts if t != REMOVED_TEXT}), rows


def _identity_replacements(employee: Employee, replaced: dict, login: dict) -> tuple[Replacements, bool]:
    """What identified the person (`replaced`: the employee's values before anonymisation; `login`: the
    user's) and what each becomes. Also whether a living namesake exists: then the bare name is not
    rewritten (it is theirs too), only "<name> (<employee number>)", which is hers alone."""
    new = employees.employee_anonymised_values(employee)
    placeholder_name = employee.full_name
    names = {replaced["full_name"], f"{replaced['first_name']} {replaced['last_name']}"}
    names |= {f"{login['first_name']} {login['last_name']}"} if login.get("last_name") else set()
    firsts = {n for n in (replaced["first_name"], replaced["preferred_name"], login.get("first_name")) if n}
    namesake = (
        Employee.objects.filter(anonymised_at__isnull=True, last_name__iexact=replaced["last_name"])
        .filter(Q(first_name__in=firsts) | Q(preferred_name__in=firsts))
        .exclude(pk=employee.pk)
        .exists()
    )
    replacements = Replacements()
    for name in sorted(names, key=len, reverse=True):
        replacements.add(f"{name} ({employee.employee_number})", str(employee))
        if not namesake:
            replacements.words.setdefault(name.strip(), placeholder_name)
    for key in ("work_email", "personal_email"):
        if replaced[key]:
            replacements.words.setdefault(replaced[key], new[key] or REMOVED_VALUE)
    if login.get("email"):
        replacements.words.setdefault(login["email"], new["work_email"])
    local_part = (replaced["work_email"] or "").split("@", 1)[0]
    replacements.add(local_part, new["work_email"].split("@", 1)[0])
    for key in ("personal_phone", "home_address"):
        if replaced[key]:
            replacements.words.setdefault(replaced[key], REMOVED_VALUE)
    if login.get("username") and login["username"] != login.get("new_username"):
        replacements.add(login["username"], login["new_username"])
    return replacements, namesake


def _queue_results_delete(replacements: Replacements) -> int:
    """Delete django-q2's stored results (successes and failures) that mention any identifying value.

    They are pickled, so SQL cannot search them: each is decoded (django-q2's own field). Nothing is
    lost that Portal needs: the lifecycle task is the record; this is the queue's result cache.
    Queued payloads (`OrmQ`) are not touched: they carry ids only (`portal.queue`).
    """
    from django_q.models import Task as QueueTask

    terms = [term.lower() for term in replacements.search_terms()]
    doomed = []
    for queued in QueueTask.objects.all().iterator(chunk_size=500):
        text = repr((queued.name, queued.func, queued.args, queued.kwargs, queued.result)).lower()
        if any(term in text for term in terms):
            doomed.append(queued.pk)
    return QueueTask.objects.filter(pk__in=doomed).delete()[0] if doomed else 0


@transaction.atomic
def retention_purge(*, employee: Employee, acting_user) -> dict:
    """Forget a terminated employee after the retention period: every copy of what identified them goes.

    In one transaction: the employee row, its history and their login
    (`accounts.services.employees.employee_anonymise`); the free text they wrote, in its rows and
    history (`AUTHORED_TEXTS`), and its copies (`AUTHORED_TEXT_COPIES`); every copy of their names,
    emails, phone, address, username and LDAP uid in every text and JSON column of every table
    (`portal.personal_data.personal_data_rewrite`: audit snapshots, actors and details, other
    people's runs naming them as former manager, task texts and results, the admin log ...);
    django-q2's stored results that mention them. Then each application that holds or held an
    account of theirs and whose connector can forget is asked to, by one queued task each
    (`account_forget_tasks_add`). Records stay (employee number, dates, who had what); only personal
    data goes. Idempotent: a second call does nothing.
    """
    locked = Employee.objects.select_for_update(of=("self",)).select_related("user").get(pk=employee.pk)
    if locked.anonymised_at is not None:
        return {"already": True}
    user = locked.user
    login = (
        {
            "username": user.get_username(),
            "first_name": user.first_name,
            "last_name": user.last_name,
            "email": user.email,
        }
        if user is not None
        else {}
    )
    emails_removed = _emails_to_remove(locked, login.get("email", ""))
    authored, authored_rows = _authored_texts_remove(locked) if locked.status == EmployeeStatus.TERMINATED else ([], 0)
    outcome = employees.employee_anonymise(employee=locked, acting_user=acting_user)
    fresh = Employee.objects.select_related("user").get(pk=employee.pk)
    if user is not None:
        login["new_username"] = fresh.user.get_username()
    replacements, namesake = _identity_replacements(fresh, outcome["replaced"], login)
    rewritten = personal_data_rewrite(replacements)
    copies = Replacements()
    for text in authored:
        copies.add(text, REMOVED_TEXT)
    rewritten_copies = personal_data_rewrite(copies, only=AUTHORED_TEXT_COPIES)
    for label, count in rewritten_copies.items():
        rewritten[label] = rewritten.get(label, 0) + count
    queue_results = _queue_results_delete(replacements)
    forget = account_forget_tasks_add(employee=fresh, acting_user=acting_user)
    return {
        "already": False,
        "history_rows": outcome["history_rows"],
        "authored_rows": authored_rows,
        "emails_removed": emails_removed,
        "rewritten": rewritten,
        "queue_results_deleted": queue_results,
        "namesake": namesake,
        "forget_tasks": forget,
    }


def _emails_to_remove(employee: Employee, login_email: str) -> int:
    """Empty the outbox rows addressed to the person (their greeting names them by first name alone,
    which the whole-value rewrite leaves alone to spare namesakes). Returns how many.

    The row stays (that an email of this kind went, when, and its outcome); its addresses, subject
    and text go. One not yet sent is not sent any more: it fails with the reason.
    """
    addresses = {a.strip().lower() for a in (employee.work_email, employee.personal_email, login_email) if a}
    if not addresses:
        return 0
    condition = Q()
    for address in addresses:
        condition |= Q(recipients__icontains=address)
    ids = [
        row.pk
        for row in OutboundEmail.objects.filter(condition).only("pk", "recipients")
        if addresses & {line.strip().lower() for line in row.recipients.splitlines()}
    ]
    if not ids:
        return 0
    OutboundEmail.objects.filter(pk__in=ids).update(
        recipients=REMOVED_VALUE, subject=REMOVED_TEXT, body=REMOVED_TEXT, html="", last_error=""
    )
    OutboundEmail.objects.filter(
        pk__in=ids, status__in=(OutboundEmail.Status.PENDING, OutboundEmail.Status.SENDING)
    ).update(
        status=OutboundEmail.Status.FAILED, next_attempt_at=None, last_error="Not sent: removed by the retention purge."
    )
    return len(ids)


def account_forget_tasks_add(*, employee: Employee, acting_user) -> list[int]:
    """One `forget_account` task per application whose connector can forget and where the person had an
    account (`accounts.services.provisioning.applications_to_forget`), in their access-change run.

    Runs inside the purge's transaction, so the tasks exist only if the purge commits, and are queued
    after it commits. The engine runs them (retried with backoff, failures shown to IT, skippable);
    key `forget:<application id>`, so a second call adds nothing. Returns the new tasks' ids.
    """
    applications = provisioning.applications_to_forget(employee=employee)
    if not applications:
        return []
    now = timezone.now()
    run = engine.run_start(
        employee=employee,
        kind=ChecklistKind.ACCESS,
        event_date=timezone.localdate(now),
        effective_at=now,
        acting_user=acting_user,
    )
    added = []
    for application in applications:
        key = f"forget:{application.pk}"
        if Task.objects.filter(run__employee=employee, key=key).exists():
            continue
        task = engine.task_add(
            run=run,
            key=key,
            title=f"Ask {application.name} to forget the purged person",
            action="forget_account",
            params={"application": application.pk},
            assignee_type=Assignee.SYSTEM,
            due_at=now,
        )
        added.append(task.pk)
    engine.run_advance(run=run)
    return added
