"""The audit log read as sentences: "Maria Keller revoked GitHub from Jan Vogel — no longer needed".

Each `AuditEvent.Action` has one template here (`TEMPLATES`; a test fails when an action has none).
A template names the actor (`{actor}`), the event's target as recorded (`{target}`) and values of
its detail (`{reason}`); a value that is the id of a person, application, run ... names its kind
(`{employee:employee}`) and is shown by name. A part in brackets (`[ — {reason}]`) is left out when
a value it names is missing or empty.

`describe(events)` writes the sentences of many events in a constant number of queries: the
actors' names in one, then one per kind of referenced object, whatever the number of events.
Names come from the rows as they are now (a purged person reads as the purge left them); the
target is the description stored with the event. The models are found by label
(`apps.get_model`), so the audit layer imports no app above it.

`event_changes(event)` gives the before/after of the fields an event changed: the detail's own
record of them where the event carries one (a move's `changes`, a `from`/`to` pair), else the
target's history row written with the event (django-simple-history; the row saved by the same
actor within `HISTORY_WINDOW` of the event, nearest first) compared with the row before it.
"""

import datetime
import re
import string
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.apps import apps
from django.contrib.auth import get_user_model
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from portal.models import AuditEvent

A = AuditEvent.Action

TEMPLATES: dict[str, str] = {
    # Access
    A.GRANT: "{actor} granted {application:application}[ ({level})] to {employee:employee}[ — source: {source}]"
    "[, via {via}][ — {run:run}]",
    A.REVOKE: "{actor} revoked {application:application} from {employee:employee}[ — {reason}][, via {via}]"
    "[ — {run:run}]",
    A.REQUEST: "{actor} requested {application:application}[ ({level})] for {employee:employee}[ until {end_date}]",
    A.APPROVE: "{actor} approved step {order} of {request:request}: {application:application} for {employee:employee}",
    A.REJECT: "{actor} rejected step {order} of {request:request}: {application:application} for {employee:employee}",
    A.LEVEL_CHANGED: "{actor} changed the level of {target} from {from} to {to}[, via {via}][ — {run:run}]",
    A.ACCESS_REQUEST_CANCELLED: "{actor} cancelled {target}[ — {reason}]",
    A.APPROVAL_HANDED_OVER: "{actor} handed {target} over from {from:employee} to {to:employee}",
    A.APPROVAL_MOVED: "{actor} moved {target} from {from:employee} to {to:employee}",
    A.OWNER_HANDED_OVER: "{actor} handed the ownership of {target} from {from:employee}[ to {to:employee}]",
    A.DELEGATION_CREATED: "{actor} delegated the approvals of {delegator:employee} to {delegate:employee}"
    "[ from {starts_on}][ to {ends_on}]",
    A.DELEGATION_CANCELLED: "{actor} cancelled the delegation from {delegator:employee} to {delegate:employee}",
    # Hardware
    A.CHECK_OUT: "{actor} checked out {target} to {employee:employee}",
    A.CHECK_IN: "{actor} checked in {target}[ from {employee:employee}][ (condition: {condition})][, now {status}]",
    A.ASSET_STATUS: "{actor} changed the status of {target}[ from {from}] to {to}[ — {note}]",
    A.TERMS: "{actor} accepted the terms[ (version {terms_version})] for {target}",
    A.ASSET_RESERVED: "{actor} reserved {target} for {employee:employee}",
    A.ASSET_RESERVATION_RELEASED: "{actor} released the reservation of {target}[ for {employee:employee}]",
    A.RETURN_REQUESTED: "{actor} asked {employee:employee} to return {asset:asset}",
    A.RETURN_SHIPPED: "{actor} recorded {asset:asset} as sent back[ ({method})][ with {carrier}]"
    "[, tracking {tracking_number}][ — {via}]",
    A.RETURN_RECEIVED: "{actor} received {asset:asset} back[ (condition: {condition})][ — {run:run}]",
    # People
    A.EMPLOYEE_CREATED: "{actor} added {target}[, via {via}]",
    A.EMPLOYEE_CHANGED: "{actor} changed {fields} of {target}[, via {via}]",
    A.STATUS_CHANGED: "{actor} changed the status of {target}[ from {from}][ to {to}][ — {reason}]",
    A.LOGIN_DISABLED: "{actor} disabled the login of {target}[ ({sessions_ended} sessions ended)]",
    A.EMPLOYEE_MOVED: "{actor} moved {target}[ — {run:run}]",
    A.TERMINATE: "{actor} terminated {target}[, last day {last_day}][, cut-off {cut_off}][ — {reason}][ — {run:run}]",
    A.PURGE: "{actor} purged the personal data of {target}",
    A.ACCOUNT_FORGOTTEN: "{actor} asked the applications to forget {target}",
    A.DELETE: "{actor} deleted {target}[, via {via}]",
    A.IMPORT: "{actor} imported {target}[ from {file}][, row {row}]",
    A.ROLE_CREATED: "{actor} created the role {target}[, via {via}]",
    # Checklists
    A.JOIN_STARTED: "{actor} started the join checklist of {employee:employee}[, effective {event_date}]",
    A.MOVE_STARTED: "{actor} started the move checklist of {employee:employee}[, effective {event_date}]",
    A.LEAVE_STARTED: "{actor} started the leave checklist of {employee:employee}[, effective {event_date}]",
    A.ACCESS_STARTED: "{actor} started the access-change checklist of {employee:employee}[, effective {event_date}]",
    A.RUN_CANCELLED: "{actor} cancelled {target}[ — {reason}][ ({tasks_skipped} tasks skipped)]",
    A.TASK_RETRIED: "{actor} retried the task “{target}”[ of {run:run}][ — {reason}]",
    A.TASK_SKIPPED: "{actor} skipped the task “{target}”[ of {run:run}][ — {reason}]",
    A.TASK_FAILED: "The task “{target}”[ of {run:run}] failed for good[ after {attempts} attempts][; IT alerted at "
    "{alerted}]",
    A.CHANGE_REQUESTED: "{actor} asked IT for a {kind} of {employee:employee}[, effective {effective_date}]",
    A.CHANGE_CONFIRMED: "{actor} confirmed {target}[ — {run:run}]",
    A.CHANGE_DECLINED: "{actor} declined {target}[ — {note}]",
    # Sign-in and second factor
    A.SIGN_IN_LOCKED: "Sign-in of {target} was locked after repeated failures[ from {address}]",
    A.SIGN_IN_UNLOCKED: "{actor} lifted the sign-in lock of {target}[ (address {address})]",
    A.SECOND_FACTOR_ENROLLED: "{actor} enrolled a {kind} device[ “{name}”] for {target}",
    A.SECOND_FACTOR_VERIFIED: "{actor} signed in with a second factor[ ({kind})]",
    A.SECOND_FACTOR_FAILED: "A wrong second-factor code was given for {target}[ ({kind})][ during {during}]"
    "[ from {address}]",
    A.SECOND_FACTOR_REMOVED: "{actor} removed a second-factor device[ “{name}”] of {target}",
    A.RECOVERY_CODES_ISSUED: "{actor} issued[ {codes}] recovery codes to {target}",
    A.RECOVERY_CODE_USED: "{actor} signed in with a recovery code",
    # Identity sources, hooks, SCIM, API
    A.USAGE_IMPORTED: "{actor} imported usage from {source}[: {file}][ for {application}][ ({events_read} events)]",
    A.SUBSCRIBER_CHANGED: "{actor} saved the event subscriber {target}",
    A.SUBSCRIBER_DELETED: "{actor} deleted the event subscriber {target}",
    A.SCIM_CONNECTION_CREATED: "{actor} created the SCIM connection {target}[ (token {token_prefix}…)]",
    A.SCIM_CONNECTION_REVOKED: "{actor} revoked the SCIM connection {target}[ (token {token_prefix}…)]",
    A.SCIM_TOKEN_REFUSED: "A SCIM request to {target} was refused: bad or revoked token",
    A.API_TOKEN_CREATED: "{actor} created the API token {target}[ for {user:user}][, expiring {expires_at}]",
    A.API_TOKEN_REVOKED: "{actor} revoked the API token {target}[ of {user:user}]",
    # Scoped administration
    A.ADMIN_SCOPE_SAVED: "{actor} limited the helpdesk login {user} to[ departments: {departments}]"
    "[; locations: {locations}]",
    A.ADMIN_SCOPE_REMOVED: "{actor} removed the limit of the helpdesk login {user}",
    # Access reviews
    A.REVIEW_LAUNCHED: "{actor} launched the access review {target}[ with {items} items][, due {due_on}]",
    A.REVIEW_DECIDED: "{actor} decided “{decision}” on {target}[ (new level {new_level})]",
    A.REVIEW_ESCALATED: "{actor} escalated {target}[ from {from:employee}][ to {to:employee}][ — {why}]",
    A.REVIEW_DUE_APPLIED: "{actor} applied the due-date rule[ “{rule}”] of {target}[: {decided} decided]"
    "[, {escalated} escalated][, {stuck} stuck]",
    A.REVIEW_CAP_CONFIRMED: "{actor} confirmed revoking[ {unanswered}] unanswered items of {target} over the cap"
    "[ of {cap_percent}%]",
    A.REVIEW_REAPPLIED: "{actor} sent the decision on {target} to the engine again",
    A.REVIEW_CLOSED: "{actor} closed the access review {target}[ ({items} items)]",
    # Separation of duties
    A.SOD_RULE_SAVED: "{actor} saved the separation-of-duties rule {target}[: {first} vs {second}][ ({enforcement})]",
    A.SOD_EXCEPTION_GRANTED: "{actor} allowed {employee:employee} an exception to {rule:rule}[ from {starts_on}]"
    "[ to {ends_on}]",
    A.SOD_EXCEPTION_ENDED: "{actor} ended the exception of {employee:employee} to {rule:rule}",
    A.SOD_GRANT_BLOCKED: "The grant of {target}[ ({level})] was blocked by {rules:rule}",
}


@dataclass(frozen=True)
class Kind:
    """A kind of object a detail value points at: its model and how it is named."""

    label: str
    related: tuple[str, ...] = ()
    name: object = str  # obj -> its name in a sentence
    admin: bool = True  # link the name to the object's admin page


RUN_NAMES = {"join": "joiner run", "move": "mover run", "leave": "leaver run", "access": "access-change run"}

KINDS: dict[str, Kind] = {
    "employee": Kind("accounts.Employee", name=lambda e: e.full_name),
    "application": Kind("accounts.Application", name=lambda a: a.name),
    "request": Kind("accounts.AccessRequest", name=lambda r: f"request #{r.pk}"),
    "campaign": Kind("accounts.AccessReview"),
    "rule": Kind("accounts.SoDRule", name=lambda r: f"“{r.name}”"),
    "asset": Kind("assets.HardwareAsset", related=("model",)),
    "run": Kind("offboarding.ChecklistRun", name=lambda r: f"{RUN_NAMES.get(r.kind, r.kind)} #{r.pk}"),
    "user": Kind("auth.User", name=lambda u: u.get_username()),
}

HISTORY_WINDOW = datetime.timedelta(seconds=5)

_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")


def _fields(text: str) -> list[tuple[str, str]]:
    return [(name, spec) for _, name, spec, _ in string.Formatter().parse(text) if name]


def _segments(template: str) -> list[tuple[bool, str]]:
    """The template as (optional?, text) pieces."""
    pieces, at = [], 0
    for match in _OPTIONAL.finditer(template):
        if match.start() > at:
            pieces.append((False, template[at : match.start()]))
        pieces.append((True, match.group(1)))
        at = match.end()
    if at < len(template):
        pieces.append((False, template[at:]))
    return pieces


def template_for(action: str) -> str:
    return TEMPLATES.get(action, "{actor}: " + AuditEvent.Action(action).label if action in A.values else "{actor}")


def _ids(value) -> list:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, int | str) and str(v).strip().lstrip("-").isdigit()]


class Resolver:
    """Names of the actors and of the objects many events' details point at, fetched once for all."""

    def __init__(self, events: Iterable[AuditEvent]):
        self.events = list(events)
        wanted: dict[str, set] = defaultdict(set)
        for event in self.events:
            for name, spec in _fields(template_for(event.action)):
                if spec in KINDS:
                    wanted[spec].update(int(v) for v in _ids(event.detail.get(name)))
        self.objects: dict[str, dict[int, object]] = {}
        for kind_name, ids in wanted.items():
            kind = KINDS[kind_name]
            try:
                model = apps.get_model(kind.label)
            except LookupError:
                continue
            rows = model._default_manager.filter(pk__in=ids)
            if kind.related:
                rows = rows.select_related(*kind.related)
            self.objects[kind_name] = {row.pk: row for row in rows}
        self.actors: dict[int, str] = {}
        actor_ids = {event.actor_id for event in self.events if event.actor_id}
        if actor_ids:
            try:
                employee = apps.get_model("accounts.Employee")
            except LookupError:
                employee = None
            if employee is not None:
                for row in employee._default_manager.filter(user_id__in=actor_ids):
                    self.actors[row.user_id] = row.full_name

    def actor(self, event: AuditEvent) -> tuple[str, str | None]:
        if event.actor_id and event.actor_id in self.actors:
            return self.actors[event.actor_id], _admin_url(get_user_model(), event.actor_id)
        if event.actor_id is None and (event.actor_repr or "system") == "system":
            return "System", None
        return event.actor_repr or "A deleted user", None

    def reference(self, kind_name: str, value) -> list[tuple[str, str | None]]:
        kind = KINDS[kind_name]
        found = self.objects.get(kind_name, {})
        names = []
        for pk in _ids(value):
            obj = found.get(int(pk))
            if obj is None:
                names.append((f"{kind_name} #{pk} (gone)", None))
            else:
                names.append((kind.name(obj), _admin_url(type(obj), obj.pk) if kind.admin else None))
        return names


def _admin_url(model, pk) -> str | None:
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])
    except NoReverseMatch:
        return None


def _target_url(event: AuditEvent) -> str | None:
    try:
        model = apps.get_model(event.target_type)
    except (LookupError, ValueError):
        return None
    return _admin_url(model, event.target_id)


def _plain(value) -> str:
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return value.get("name") or ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    text = str(value)
    if re.fullmatch(r"[a-z]+(_[a-z]+)+", text):  # a choice's value: pending_return -> pending return
        text = text.replace("_", " ")
    return text


def _pieces(event: AuditEvent, resolver: Resolver) -> list[tuple[str, str | None]]:
    """The sentence as (text, link or None) pieces."""

    def value_of(name: str, spec: str) -> list[tuple[str, str | None]]:
        if name == "actor":
            return [resolver.actor(event)]
        if name == "target":
            return [(event.target_repr or f"{event.target_type} #{event.target_id}", _target_url(event))]
        raw = event.detail.get(name)
        if spec in KINDS:
            if not _ids(raw):
                return []
            return resolver.reference(spec, raw)
        text = _plain(raw)
        return [(text, None)] if text else []

    out: list[tuple[str, str | None]] = []
    for optional, text in _segments(template_for(event.action)):
        part: list[tuple[str, str | None]] = []
        missing = False
        for literal, name, spec, _ in string.Formatter().parse(text):
            if literal:
                part.append((literal, None))
            if name:
                values = value_of(name, spec or "")
                if not values:
                    missing = True
                    values = [("?", None)]
                for i, value in enumerate(values):
                    if i:
                        part.append((", ", None))
                    part.append(value)
        if optional and missing:
            continue
        out.extend(part)
    return out


def sentence_text(pieces) -> str:
    return "".join(text for text, _ in pieces)


def sentence_html(pieces) -> str:
    return format_html_join(
        "", "{}", ((format_html('<a href="{}">{}</a>', url, text) if url else text,) for text, url in pieces)
    )


def describe(events: Iterable[AuditEvent]) -> dict[int, list[tuple[str, str | None]]]:
    """Event id -> its sentence as pieces, for many events in a constant number of queries."""
    events = list(events)
    resolver = Resolver(events)
    return {event.pk: _pieces(event, resolver) for event in events}


def describe_one(event: AuditEvent) -> list[tuple[str, str | None]]:
    return describe([event])[event.pk]


# --- Before and after --------------------------------------------------------------------------------

# The field a `from`/`to` pair in an event's detail is about.
FROM_TO_FIELD = {
    A.LEVEL_CHANGED: "level",
    A.STATUS_CHANGED: "status",
    A.ASSET_STATUS: "status",
    A.APPROVAL_HANDED_OVER: "approver",
    A.APPROVAL_MOVED: "approver",
    A.OWNER_HANDED_OVER: "owner",
    A.REVIEW_ESCALATED: "reviewer",
}
FROM_TO_KIND = {"approver": "employee", "owner": "employee", "reviewer": "employee"}

# Bookkeeping columns a diff leaves out.
NOT_DIFFED = {"id", "updated_at", "modified_at", "created_at", "history_change_reason"}


@dataclass(frozen=True)
class Change:
    field: str
    before: str
    after: str


def event_changes(event: AuditEvent) -> tuple[str, list[Change]]:
    """(where the values come from, the changed fields) for one event; no changes when none is known."""
    detail = event.detail or {}
    if isinstance(detail.get("changes"), dict):
        changes = [
            Change(field, _plain(pair[0]), _plain(pair[1]))
            for field, pair in sorted(detail["changes"].items())
            if isinstance(pair, list | tuple) and len(pair) == 2
        ]
        return "recorded with the event", changes
    if event.action in FROM_TO_FIELD and ("from" in detail or "to" in detail):
        field = FROM_TO_FIELD[event.action]
        kind = FROM_TO_KIND.get(field)
        if kind:
            resolver = Resolver([])
            resolver.objects[kind] = {}
            ids = [int(v) for v in _ids([detail.get("from"), detail.get("to")])]
            model = apps.get_model(KINDS[kind].label)
            resolver.objects[kind] = {row.pk: row for row in model._default_manager.filter(pk__in=ids)}

            def name(v):
                return sentence_text(resolver.reference(kind, v)) if _ids(v) else "—"

            return "recorded with the event", [Change(field, name(detail.get("from")), name(detail.get("to")))]
        return "recorded with the event", [
            Change(field, _plain(detail.get("from")) or "—", _plain(detail.get("to")) or "—")
        ]
    return _history_changes(event)


SENSITIVE_NOT_SHOWN = "(sensitive, not shown)"


def _history_changes(event: AuditEvent) -> tuple[str, list[Change]]:
    try:
        model = apps.get_model(event.target_type)
    except (LookupError, ValueError):
        return "", []
    history = getattr(model, "history", None)
    if history is None or not str(event.target_id).isdigit():
        return "", []
    rows = history.filter(
        **{model._meta.pk.attname: int(event.target_id)},
        history_date__gte=event.created_at - HISTORY_WINDOW,
        history_date__lte=event.created_at + HISTORY_WINDOW,
    )
    if event.actor_id:
        rows = rows.filter(history_user_id=event.actor_id)
    candidates = sorted(rows, key=lambda row: abs(row.history_date - event.created_at))
    if not candidates:
        return "", []
    record = candidates[0]
    where = f"history of {model._meta.verbose_name} #{event.target_id}, {record.history_date:%Y-%m-%d %H:%M:%S}"
    previous = record.prev_record
    if previous is None:
        fields = [f for f in record.instance_type._meta.concrete_fields if f.attname not in NOT_DIFFED]
        return where + " (created)", [
            Change(f.verbose_name, "—", _field_text(f, getattr(record, f.attname))) for f in fields
        ]
    delta = record.diff_against(previous, foreign_keys_are_objs=False)
    concrete = {f.name: f for f in record.instance_type._meta.concrete_fields}
    changes = []
    for change in delta.changes:
        if change.field in NOT_DIFFED:
            continue
        field = concrete.get(change.field)
        label = field.verbose_name if field is not None else change.field
        changes.append(Change(label, _field_text(field, change.old), _field_text(field, change.new)))
    return where, changes


def _field_text(field, value) -> str:
    if value is None or value == "":
        return "—"
    if getattr(field, "encrypted", False):
        # Sensitive (encrypted at rest): the audit log's readers include auditors, who may not see it.
        return SENSITIVE_NOT_SHOWN
    if field is not None and field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if field is not None and field.is_relation and field.related_model is not None:
        obj = field.related_model._default_manager.filter(pk=value).first()
        return str(obj) if obj is not None else f"#{value} (gone)"
    return _plain(value)


def changes_html(event: AuditEvent) -> str:
    where, changes = event_changes(event)
    if not changes:
        return format_html("<p>{}</p>", "No field changes are recorded for this event.")
    rows = format_html_join(
        "",
        "<tr><th scope='row'>{}</th><td class='audit-before'>{}</td><td class='audit-after'>{}</td></tr>",
        ((c.field, c.before, c.after) for c in changes),
    )
    return format_html(
        "<table class='audit-diff'><caption>{}</caption><thead><tr><th scope='col'>Field</th>"
        "<th scope='col'>Before</th><th scope='col'>After</th></tr></thead><tbody>{}</tbody></table>",
        f"From the {where}" if where else "",
        rows,
    )
